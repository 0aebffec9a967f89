"""A lab of its own for one test module: `fleetserve lab up` under its own FLEETSERVE_LAB name (containers,
network, hub and inventory beside any other lab) and state directory, and `lab down` after, whatever happens."""

from __future__ import annotations

import contextlib
import shutil
import subprocess

import pytest

from fleetserve import cli


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
