"""`fleetserve plan`: the real CLI over ansible-runner, two local 'hosts' replaying different GPU recordings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture()
def fleet(tmp_path, fixtures_dir, collection_root):
    """Inventory of two local hosts: 'big' replays 2xH200, 'small' the real 1xH100 recording."""
    models = tmp_path / "models"
    (models / "MiniMax-M2.5").mkdir(parents=True)
    with open(models / "MiniMax-M2.5" / "model-00001-of-00130.safetensors", "wb") as handle:
        handle.truncate(254 * 10**9)  # sparse: the weights count as present
    lines = []
    for host, recording, port in (("big", "h200-x2", 18601), ("small", "h100-x1", 18602)):
        wrapper = tmp_path / f"nvidia-smi-{host}"
        wrapper.write_text(
            f"#!/bin/sh\nFLEETSERVE_FAKE_GPU_DIR={fixtures_dir / 'nvidia-smi' / recording} "
            f"exec {fixtures_dir / 'bin' / 'nvidia-smi'} \"$@\"\n"
        )
        wrapper.chmod(0o755)
        lines.append(
            f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} "
            f"preflight_nvidia_smi={wrapper} preflight_port={port} fleetserve_models_dir={models} "
            f"preflight_nvswitch_proc_dir={tmp_path / 'no-nvswitch'}"
        )
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("\n".join(lines) + "\n")
    env = dict(
        os.environ,
        FLEETSERVE_STATE_DIR=str(tmp_path / "state"),
        FLEETSERVE_HOME=str(collection_root),
        PYTHONPATH=str(collection_root / "src"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return inventory, env


def run_cli(fleet, *args):
    inventory, env = fleet
    return subprocess.run(
        [sys.executable, "-m", "fleetserve", "plan", "-i", str(inventory), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_plan_json(fleet):
    done = run_cli(fleet, "--json")
    assert done.returncode == 1, done.stderr  # one host refused
    report = json.loads(done.stdout)
    assert sorted(report["plans"]) == ["big"]
    big = report["plans"]["big"]
    assert (big["model"], big["engine"], big["tensor_parallel_size"], big["gpu_name"]) == (
        "MiniMax-M2.5",
        "sglang",
        2,
        "NVIDIA H200",
    )
    assert report["refusals"]["small"] == (
        "MiniMax-M2.5 does not fit: 230.0 GB of weights per GPU at tensor_parallel_size 1 plus 0.5 GB of runtime reserve "
        "exceed the 72.7 GB budget (0.85 x 85.5 GB) of each NVIDIA H100 80GB HBM3; use at least 4 such GPUs "
        "(tensor_parallel_size 4) or larger GPUs"
    )
    assert {h["host"]: h["changed"] for h in report["hosts"]} == {"big": 0, "small": 0}


def test_plan_table(fleet):
    done = run_cli(fleet)
    assert done.returncode == 1, done.stderr
    assert "serving plans (1 of 2 hosts)" in done.stdout
    big = next(line for line in done.stdout.splitlines() if "│ big" in line)
    assert "MiniMax-M2.5" in big and "sglang 0.5.23" in big and "2x NVIDIA H200" in big and "2/1/1" in big
    assert "small: refused: MiniMax-M2.5 does not fit:" in done.stdout.replace("\n", " ")
