"""A lab of its own for one test module: `fleetserve lab up` under its own FLEETSERVE_LAB name (containers,
network, hub and inventory beside any other lab) and state directory, and `lab down` after, whatever happens."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess

import pytest

from fleetserve import cli, lab


@contextlib.contextmanager
def running_lab(name: str, state_dir, *up_args: str):
    if shutil.which("docker") is None or subprocess.run(["docker", "version"], capture_output=True).returncode:
        pytest.fail("the lab test needs a Docker engine: run scripts/lab/start-dockerd.sh")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLEETSERVE_LAB", name)
    mp.setenv("FLEETSERVE_STATE_DIR", str(state_dir))
    try:
        assert cli.main(["lab", "up", *up_args]) == 0
        yield
    finally:
        cli.main(["lab", "down"])
        mp.undo()


def ip_of(host: str) -> str:
    """A lab host's address on the lab's network (the running lab's FLEETSERVE_LAB)."""
    fmt = '{{(index .NetworkSettings.Networks "' + lab.network_name() + '").IPAddress}}'
    return subprocess.run(
        ["docker", "inspect", "-f", fmt, host], capture_output=True, text=True, check=True
    ).stdout.strip()


def cli_json(capsys, *argv: str) -> tuple[int, dict]:
    """`fleetserve ARGV --json` in-process: its exit code and the JSON it printed."""
    code = cli.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)
