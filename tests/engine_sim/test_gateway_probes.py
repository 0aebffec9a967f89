"""The simulator, started as vLLM, answers the SGLang Model Gateway's worker probes as real vLLM 0.26.0 does.

smg 1.13 (roles/router) registers a worker by probing /health, then /v1/models and /version (which make it
a runtime_type "vllm" worker with the served name and max_model_len as labels); its load monitor asks
/loads and /v1/loads, then reads the vllm:* gauges of /metrics. The sequence below is the one smg 1.13
sent to the simulator (its access log). Answers are compared with tests/fixtures/real-vllm-0.26.0 where
the real engine was recorded; routes real vLLM does not serve must be 404 with FastAPI's body, else the
gateway would take the worker for SGLang (/server_info, /model_info) or read loads vLLM never reports.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

HERE = Path(__file__).resolve().parent
REC = json.loads((HERE.parents[0] / "fixtures" / "real-vllm-0.26.0" / "recordings.json").read_text(encoding="utf-8"))
ANSWERS = REC["answers"]
KEY = "gateway-probe-key"
SERVED = "local-org/tiny-minimax-m2"
# smg 1.13's registration and load-monitor requests to a vLLM worker, in order.
PROBES = ["/health", "/v1/models", "/version", "/health", "/loads", "/v1/loads", "/metrics"]
# vllm:* gauges and counters smg's load monitor can use that real vLLM 0.26.0 exports.
GATEWAY_METRICS = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, key=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type"), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type"), err.read().decode()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    model = tmp_path_factory.mktemp("model")
    port = _free_port()
    argv = ["--model", str(model), "--served-model-name", SERVED, "--max-model-len", "2048"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    env = dict(os.environ, PYTHONPATH=str(HERE), VLLM_API_KEY=KEY, FLEETSERVE_SIM_STARTUP_S="0.3")
    env["FLEETSERVE_SIM_VERSION"] = "0.26.0"
    proc = subprocess.Popen([sys.executable, "-m", "fleetserve_engine_sim", "vllm", *argv], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if _get(base + "/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    yield base
    proc.terminate()
    proc.wait(10)


def test_registration_probes_answer_as_real_vllm(sim):
    """The gateway probes with the worker's key; each answer is the real engine's status and content type."""
    answers = {path: _get(sim + path, KEY) for path in PROBES}
    health = ANSWERS["health"]
    assert answers["/health"] == (health["status"], health["content_type"], health["body"])
    status, ctype, body = answers["/version"]
    assert (status, ctype) == (ANSWERS["version"]["status"], ANSWERS["version"]["content_type"])
    assert json.loads(body) == {"version": "0.26.0"}
    assert set(json.loads(body)) == set(json.loads(ANSWERS["version"]["body"]))
    status, ctype, body = answers["/v1/models"]
    real = json.loads(ANSWERS["models"]["body"])["data"][0]
    card = json.loads(body)["data"][0]
    assert (status, ctype) == (200, ANSWERS["models"]["content_type"])
    assert set(card) == set(real), "the gateway reads the served name, root and max_model_len of this card"
    assert (card["id"], card["owned_by"], card["max_model_len"]) == (SERVED, "vllm", 2048)
    for path in ("/loads", "/v1/loads"):
        assert answers[path][0] == 404 and json.loads(answers[path][2]) == {"detail": "Not Found"}


def test_no_sglang_routes_so_the_gateway_sees_vllm(sim):
    for path in ("/server_info", "/get_server_info", "/model_info", "/get_model_info"):
        status, _ctype, body = _get(sim + path, KEY)
        assert (status, json.loads(body)) == (404, {"detail": "Not Found"}), path


def test_probes_outside_v1_need_no_key_like_vllm(sim):
    """vLLM's --api-key guards /v1 only: /health, /version and /metrics answer without it; /v1/models does not."""
    assert _get(sim + "/health")[0] == 200
    assert _get(sim + "/version")[0] == 200
    assert _get(sim + "/metrics")[0] == 200
    assert _get(sim + "/v1/models") == (
        ANSWERS["models_no_key"]["status"],
        ANSWERS["models_no_key"]["content_type"],
        ANSWERS["models_no_key"]["body"],
    )


def test_metrics_the_gateway_reads_have_vllms_names(sim):
    status, ctype, text = _get(sim + "/metrics")
    assert (status, ctype) == (ANSWERS["metrics"]["status"], ANSWERS["metrics"]["content_type"])
    names = {ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")}
    assert GATEWAY_METRICS <= names
    assert all(n.startswith("vllm:") for n in names), "no sglang:* name from an engine that answers as vLLM"
    assert names <= set(
        ANSWERS["metrics_names"]
    ), f"not in real vLLM 0.26.0: {sorted(names - set(ANSWERS['metrics_names']))}"
    info = next(ln for ln in text.splitlines() if ln.startswith("vllm:cache_config_info{"))
    real = next(ln for ln in ANSWERS["metrics_selected"] if ln.startswith("vllm:cache_config_info{"))
    labels = lambda line: {kv.split("=")[0] for kv in line.split("{", 1)[1].split("}")[0].split(",")}  # noqa: E731
    assert labels(info) <= labels(real) and info.endswith(" 1.0")
