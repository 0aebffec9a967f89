"""The README's main job on the local lab, end to end: lab up (hosts, hub, wheels), site.yml from
preflight to a verified endpoint with live progress, an idempotent re-run, check mode, status, lab down.

Real peers only: Docker lab hosts (fleetserve/lab-systemd:bookworm), olah serving the tiny lab model,
the engine simulator installed as sglang by uv from the lab's wheel directory.
"""

import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from fleetserve import cli, lab, paths

pytestmark = pytest.mark.integration

LAB = "fstest"


@pytest.fixture(scope="module")
def lab_hosts(tmp_path_factory):
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "version"], capture_output=True, check=False).returncode
    ):
        pytest.fail("the lab test needs a Docker engine: run scripts/lab/start-dockerd.sh")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLEETSERVE_LAB", LAB)  # its own containers, network, hub and inventory, beside a developer's lab
    mp.setenv("FLEETSERVE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    try:
        assert cli.main(["lab", "up", "--hosts", "2"]) == 0
        yield lab.existing_hosts()
    finally:
        cli.main(["lab", "down"])
        mp.undo()


def _json_run(capsys, *argv):
    code = cli.main([*argv, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_lab_up_brings_hosts_hub_and_a_private_inventory(lab_hosts):
    assert lab_hosts == [f"{LAB}-lab-1", f"{LAB}-lab-2"]
    inventory = paths.lab_inventory()
    assert inventory.name == f"hosts-{LAB}.yml"
    assert oct(inventory.stat().st_mode & 0o777) == "0o600", "the inventory holds the lab's API key"
    text = inventory.read_text()
    assert f"{LAB}-lab-1: null" in text and "lab_workers:" in text and "routers:" in text
    for host in lab_hosts:
        state = subprocess.run(
            ["docker", "exec", host, "systemctl", "is-system-running"], capture_output=True, text=True, check=False
        )
        assert state.stdout.strip() in ("running", "degraded")
    hub = lab.status()["hub"]
    assert hub["running"] is True
    # The hosts reach the hub at the lab network's gateway, and it serves the catalog's lab model.
    probe = subprocess.run(
        [
            "docker",
            "exec",
            lab_hosts[0],
            "curl",
            "-sf",
            "-m",
            "5",
            f"{hub['url']}/api/models/{lab.MODEL_REPO}/revision/main",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(probe.stdout)["id"] == lab.MODEL_REPO


def test_deploy_serves_a_verified_endpoint_then_changes_nothing(lab_hosts, capsys):
    code, first, progress = _json_run(capsys, "deploy")
    assert code == 0, first
    assert {h["host"]: h["status"] for h in first["hosts"]} == {h: "changed" for h in lab_hosts}
    # Live progress: one line per task result and host (stderr is not a terminal here).
    assert f"{LAB}-lab-2" in progress and "Verify | Send the staged requests to the endpoint" in progress

    key = lab.api_key()
    for host in lab_hosts:
        ip = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                '{{(index .NetworkSettings.Networks "' + lab.network_name() + '").IPAddress}}',
                host,
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        request = urllib.request.Request(
            f"http://{ip}:8000/v1/chat/completions",
            data=json.dumps(
                {"model": "local-org/tiny-minimax-m2", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
            ).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["choices"][0]["message"]["role"] == "assistant"
        # The key reached the engine through its 0600 config, never through argv.
        ps = subprocess.run(
            ["docker", "exec", host, "ps", "-eo", "args"], capture_output=True, text=True, check=False
        ).stdout
        assert "sglang.launch_server" in ps and key not in ps

    code, second, _ = _json_run(capsys, "deploy")
    assert code == 0
    assert [h["changed"] for h in second["hosts"]] == [0, 0]

    code, check, _ = _json_run(capsys, "deploy", "--check")
    assert code == 0
    assert [h["changed"] for h in check["hosts"]] == [0, 0]


def test_status_reports_what_each_host_serves(lab_hosts, capsys):
    code, result, _ = _json_run(capsys, "status")
    assert code == 0, result
    for host in lab_hosts:
        report = result["status"][host]
        assert {k: report[k] for k in ("role", "engine", "version", "unit", "health", "models", "routers")} == {
            "role": "worker",
            "engine": "sglang",
            "version": "0.5.23",
            "unit": "running",
            "health": 200,
            "models": ["local-org/tiny-minimax-m2"],
            "routers": [],
        }
    secret = lab.api_key()
    artifacts = result["artifact_dir"]
    for root, _dirs, files in os.walk(artifacts):
        for name in files:
            with open(os.path.join(root, name), errors="replace") as handle:
                assert secret not in handle.read(), f"the API key leaked into {name}"


def test_lab_down_removes_hosts_hub_network_and_inventory(lab_hosts):
    hub = lab.status()["hub"]
    assert cli.main(["lab", "down"]) == 0
    assert lab.existing_hosts() == []
    assert not paths.lab_inventory().exists()
    assert (
        subprocess.run(
            ["docker", "network", "inspect", lab.network_name()], capture_output=True, check=False
        ).returncode
        != 0
    )
    assert lab.status()["hub"] is None
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{hub['url']}/api/models/{lab.MODEL_REPO}/revision/main", timeout=2)
