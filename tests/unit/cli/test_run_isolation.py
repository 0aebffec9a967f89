"""One run's options must not reach the next: `deploy --check` then `deploy` must change the hosts.

ansible-runner keeps `env/cmdline` and `env/extravars` in its private data directory and reads them
again on every later run that shares the directory, so `--check` or a rollout's `-e` would silently
apply to every run after it. Two real runs of playbooks/status.yml against a local "router" host
(no engine hosts: the router play only reads, and its requests to a closed port answer -1).
"""

import json
import sys
from pathlib import Path

import pytest

from fleetserve import runner

pytestmark = pytest.mark.unit


def _command(result: runner.RunResult) -> list[str]:
    return json.loads((Path(result.artifact_dir) / "command").read_text())["command"]


def test_check_mode_and_extravars_do_not_leak_into_the_next_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETSERVE_STATE_DIR", str(tmp_path / "state"))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    routers:\n      hosts:\n        fs-unit-router:\n"
        f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n"
        "          router_port: 9\n"
    )

    first = runner.run_playbook("status.yml", inventory=inventory, check=True, extravars={"fs_probe": "first"})
    assert first.rc == 0, first.status
    assert "--check" in _command(first)
    assert any(arg.endswith("env/extravars") for arg in _command(first)), _command(first)

    second = runner.run_playbook("status.yml", inventory=inventory)
    assert second.rc == 0, second.status
    command = _command(second)
    assert "--check" not in command, f"check mode leaked into the next run: {command}"
    assert not any(arg.endswith("env/extravars") for arg in command), f"extra vars leaked into the next run: {command}"
