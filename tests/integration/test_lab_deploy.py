"""The README's main job on the local lab: lab up, deploy with progress, idempotent re-run, check mode."""

import json
import shutil
import subprocess

import pytest

from fleetserve import cli, lab, paths

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab_hosts(tmp_path_factory):
    if shutil.which("docker") is None or subprocess.run(["docker", "version"], capture_output=True).returncode:
        pytest.fail("the lab test needs a Docker engine: run scripts/lab/start-dockerd.sh")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLEETSERVE_LAB", "fstest")  # its own containers and inventory, beside a developer's lab
    mp.setenv("FLEETSERVE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    try:
        assert cli.main(["lab", "up", "--hosts", "2"]) == 0
        yield lab.existing_hosts()
    finally:
        cli.main(["lab", "down"])
        mp.undo()


def _deploy(capsys, *args):
    # What scripts/deploy runs on the lab: the stages a GPU-less, hub-less lab can run.
    code = cli.main(["deploy", "--json", "--tags", "preflight,tooling", *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_lab_up_writes_an_inventory_of_running_systemd_hosts(lab_hosts):
    assert lab_hosts == ["fstest-lab-1", "fstest-lab-2"]
    inventory = paths.lab_inventory()
    assert inventory.name == "hosts-fstest.yml"
    assert "fstest-lab-1: {}" in inventory.read_text()
    for host in lab_hosts:
        state = subprocess.run(["docker", "exec", host, "systemctl", "is-system-running"], capture_output=True, text=True)
        assert state.stdout.strip() in ("running", "degraded")


def test_deploy_converges_then_changes_nothing(lab_hosts, capsys):
    code, first, progress = _deploy(capsys)
    assert code == 0, first
    assert {h["host"]: h["status"] for h in first["hosts"]} == {h: "changed" for h in lab_hosts}
    # Live progress: one line per task result and host (stderr is not a terminal here).
    assert "fstest-lab-2" in progress and "UV | Install the pinned uv from PyPI into its own venv" in progress
    for host in lab_hosts:
        version = subprocess.run(["docker", "exec", host, "uv", "--version"], capture_output=True, text=True)
        assert version.stdout.startswith("uv 0.13.9")

    code, second, _ = _deploy(capsys)
    assert code == 0
    assert [h["changed"] for h in second["hosts"]] == [0, 0]

    code, check, _ = _deploy(capsys, "--check")
    assert code == 0
    assert [h["changed"] for h in check["hosts"]] == [0, 0]


def test_lab_down_removes_hosts_and_inventory(lab_hosts):
    assert cli.main(["lab", "down"]) == 0
    assert lab.existing_hosts() == []
    assert not paths.lab_inventory().exists()
