"""`fleetserve verify` end to end: the CLI drives ansible-runner over a real inventory, the verify role
and module check controlled endpoints, and the per-host table/JSON reports the stage timings.

The CLI runs against a stand-in checkout (FLEETSERVE_HOME) whose playbooks/verify.yml omits the
preflight play (it needs GPUs) and whose inventory carries each host's preflight_plan instead; the
roles and plugins are this checkout's own, linked in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from fake_openai import Behaviour, FakeOpenAI  # noqa: E402

pytestmark = pytest.mark.integration

SECRET = "sk-fs-verify-cli-secret"
PLAYBOOK = """---
- name: Verify
  hosts: all
  gather_facts: false
  roles:
    - role: fleetserve.minimax.verify
      tags: [verify]
"""


def host(port, **plan):
    base = {
        "served_model_name": "fake-org/model",
        "port": port,
        "engine": "sglang",
        "reasoning_style": "append_think",
        "tool_call_parser": "minimax-m2",
        "nnodes": 1,
        "node_rank": 0,
        "start_timeout_s": 10,
        "host": "0.0.0.0",
    }
    base.update(plan)
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "preflight_plan": base}


@pytest.fixture()
def checkout(tmp_path, collection_root):
    home = tmp_path / "checkout"
    (home / "playbooks").mkdir(parents=True)
    for name in ("galaxy.yml", "roles", "plugins", "meta", "ansible.cfg"):
        (home / name).symlink_to(collection_root / name)
    (home / "playbooks" / "verify.yml").write_text(PLAYBOOK)
    return home


def run_cli(checkout, tmp_path, collection_root, inventory, *extra):
    env = dict(os.environ)
    env.update(
        FLEETSERVE_HOME=str(checkout),
        FLEETSERVE_STATE_DIR=str(tmp_path / "state"),
        PYTHONPATH=str(collection_root / "src"),
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    )
    return subprocess.run(
        [sys.executable, "-m", "fleetserve", "verify", "-i", str(inventory), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_verify_reports_each_host(checkout, tmp_path, collection_root):
    good = FakeOpenAI(Behaviour(api_key=SECRET, chat="append_think")).start()
    bad = FakeOpenAI(Behaviour(api_key="sk-other", chat="append_think")).start()
    try:
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(
            json.dumps(
                {
                    "all": {
                        "vars": {"fleetserve_api_key": SECRET},
                        "hosts": {
                            "node-a": host(good.port),
                            "node-b": host(bad.port),
                            "node-c": host(good.port, nnodes=2, node_rank=1),
                        },
                    }
                }
            )
        )
        proc = run_cli(checkout, tmp_path, collection_root, inventory, "--json")
        assert proc.returncode == 1, proc.stderr[-3000:]
        payload = json.loads(proc.stdout)
        reports = payload["verify"]
        assert reports["node-a"]["status"] == "ok"
        assert list(reports["node-a"]["stages"]) == [
            "tcp",
            "health",
            "models",
            "auth",
            "chat",
            "shape",
            "tool_call",
            "stream",
        ]
        assert reports["node-b"]["status"] == "failed"
        assert (reports["node-b"]["reason"], reports["node-b"]["stage"]) == ("auth_rejected", "models")
        assert reports["node-c"]["status"] == "skipped" and reports["node-c"]["reason"] == "worker_node"
        # The key never reaches the CLI's output nor ansible-runner's artifacts on disk.
        assert SECRET not in proc.stdout + proc.stderr
        for path in (tmp_path / "state").rglob("*"):
            if path.is_file():
                assert SECRET not in path.read_text(errors="replace"), path

        table = run_cli(checkout, tmp_path, collection_root, inventory)
        assert table.returncode == 1
        lines = table.stdout.splitlines()
        row_a = next(line for line in lines if "node-a" in line)
        row_b = next(line for line in lines if "node-b" in line and "│" in line)
        assert "ok" in row_a and "FAIL" not in row_a
        assert "FAIL" in row_b and "auth_rejected" in row_b
        assert any(line.startswith("node-b: models stage failed:") for line in lines)
        assert any(line.startswith("node-c: node_rank 1 of 2 runs no API server") for line in lines)
    finally:
        good.stop()
        bad.stop()


def test_verify_all_ok_exits_zero(checkout, tmp_path, collection_root):
    with FakeOpenAI(Behaviour(chat="separate", stream="no_done")) as server:
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(
            json.dumps(
                {
                    "all": {
                        "hosts": {
                            "solo": host(server.port, engine="vllm", reasoning_style="separate", tool_call_parser=None)
                        }
                    }
                }
            )
        )
        proc = run_cli(checkout, tmp_path, collection_root, inventory, "--json")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        report = json.loads(proc.stdout)["verify"]["solo"]
        assert report["stream"]["done_marker"] is False
        assert "tool_call" not in report["stages"]
