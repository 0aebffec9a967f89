"""The README's main command as a new user runs it: `scripts/deploy` in a fresh clone, with an empty
FLEETSERVE_VENV and state directory and no test venv on PATH.

It must install what it needs by itself (the controller venv; the lab's own venv for the lab-only tools),
bring up the lab, deploy it to a verified endpoint that answers a chat request, and on a second run
change nothing. This caught `fleetserve lab up` importing numpy, which only the test venv had.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest
import yaml

pytestmark = pytest.mark.integration

LAB = "fsreadme"  # its own lab: containers, network and inventory apart from every other test's
HOSTS = [f"{LAB}-lab-1", f"{LAB}-lab-2"]


def _user_env(tmp_path) -> dict:
    """A login shell's environment: system PATH only (no venv), fresh venv and state directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH")}
    env.update(
        PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        FLEETSERVE_VENV=str(tmp_path / "venv"),
        FLEETSERVE_STATE_DIR=str(tmp_path / "state"),
        FLEETSERVE_LAB=LAB,
    )
    pyenv = os.path.expanduser("~/.pyenv/shims")
    if os.path.isdir(pyenv):  # where this machine's python3.11 comes from
        env["PATH"] = pyenv + ":" + env["PATH"]
    return env


def _summary(stdout: str) -> dict:
    """The `--json` summary: the last top-level JSON object the command printed."""
    return json.loads(stdout[stdout.rindex("\n{\n") + 1 :])


def _ip(host: str) -> str:
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    out = subprocess.run(["docker", "inspect", "-f", fmt, host], capture_output=True, text=True, check=True).stdout
    return out.split()[0]


@pytest.fixture(scope="module")
def clone(collection_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("readme")
    checkout = base / "fresh"
    subprocess.run(["git", "clone", "-q", str(collection_root), str(checkout)], check=True)
    env = _user_env(base)
    yield checkout, env
    venv_cli = base / "venv" / "bin" / "fleetserve"
    if venv_cli.exists():
        subprocess.run([str(venv_cli), "lab", "down"], cwd=checkout, env=env, capture_output=True, check=False)


def test_scripts_deploy_from_a_fresh_clone_serves_then_changes_nothing(clone):
    checkout, env = clone
    started = time.monotonic()
    first = subprocess.run(
        ["scripts/deploy", "--json"], cwd=checkout, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    first_s = time.monotonic() - started
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    summary = _summary(first.stdout)
    assert {h["host"] for h in summary["hosts"]} == set(HOSTS)
    assert all(h["status"] == "changed" for h in summary["hosts"]), summary

    # The endpoint answers a chat request, with the key the lab generated (in its 0600 inventory).
    inventory = checkout / "inventories" / "lab" / f"hosts-{LAB}.yml"
    key = yaml.safe_load(inventory.read_text())["all"]["vars"]["fleetserve_api_key"]
    for host in HOSTS:
        request = urllib.request.Request(
            f"http://{_ip(host)}:8000/v1/chat/completions",
            data=json.dumps(
                {"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], "model": "local-org/tiny-minimax-m2"}
            ).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["choices"][0]["message"]["role"] == "assistant"

    started = time.monotonic()
    second = subprocess.run(
        ["scripts/deploy", "--json"], cwd=checkout, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    second_s = time.monotonic() - started
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert {h["host"]: h["changed"] for h in _summary(second.stdout)["hosts"]} == {h: 0 for h in HOSTS}
    print(json.dumps({"first_run_s": round(first_s, 1), "rerun_s": round(second_s, 1)}))
