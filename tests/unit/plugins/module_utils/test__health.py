"""The one health rule, and the probe every Python consumer uses."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from ansible_collections.fleetserve.minimax.plugins.filter.health import health_state as health_filter
from ansible_collections.fleetserve.minimax.plugins.module_utils import _health, _openai

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize(
    "engine, status, state",
    [
        ("sglang", 200, "ready"),
        ("vllm", 200, "ready"),
        ("sglang", 503, "warming_up"),
        ("vllm", 503, "failing"),
        ("sglang", 500, "failing"),
        ("vllm", None, "failing"),
    ],
)
def test_health_state(engine, status, state):
    assert _health.health_state(engine, status) == state
    assert health_filter(-1 if status is None else str(status), engine) == state


def test_verify_judges_by_the_same_rule():
    assert _openai.health_state is _health.health_state


def test_probe_status_reads_any_answer_and_none_for_no_answer():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert _health.probe_status(f"http://127.0.0.1:{server.server_port}/health") == 503
    finally:
        server.shutdown()
    assert _health.probe_status(f"http://127.0.0.1:{server.server_port}/health", timeout=1) is None


def test_no_other_health_rule_or_six_is_left():
    """health_state is defined once; no module carries its own probe or six."""
    sources = list((ROOT / "plugins").rglob("*.py"))
    defining = [p.name for p in sources if "def health_state(engine" in p.read_text()]
    assert defining == ["_health.py"]
    assert not [p.name for p in sources if "module_utils.six" in p.read_text()]
    assert not [p.name for p in sources if "def probe(" in p.read_text()]
