"""Contract-test fixtures: the real engines' parser venvs, the pinned gateway's venv, and argv rendered by the
engine roles themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="session")
def parser_venvs() -> Path:
    """Build (or reuse) one venv per pinned engine version. A failed build fails the tests: no skipping."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "testenv" / "engine_parsers.sh")], capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, f"scripts/testenv/engine_parsers.sh failed:\n{proc.stderr[-3000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def check_cli(parser_venvs, tmp_path_factory):
    """check_cli("vllm", "0.9.2", {id: argv}) -> (version reported by the venv, {id: result})."""

    def _check(engine: str, version: str, cases: dict):
        python = parser_venvs / f"{engine}-{version}" / "bin" / "python"
        assert python.exists(), f"no parser venv for {engine} {version} under {parser_venvs}"
        payload = json.dumps([{"id": k, "argv": v} for k, v in cases.items()])
        proc = subprocess.run(
            [str(python), str(HERE / "check_engine_cli.py"), engine],
            input=payload,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": "", "VLLM_LOGGING_LEVEL": "ERROR"},
        )
        assert proc.returncode == 0, f"parser checker crashed for {engine} {version}:\n{proc.stderr[-3000:]}"
        out = json.loads(proc.stdout)
        return out["version"], out["results"]

    return _check


@pytest.fixture(scope="session")
def gateway_python(tmp_path_factory):
    """A venv with the pinned smg from the wheels the lab installs (scripts/testenv/router_wheels.sh)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/testenv/router_wheels.sh")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = proc.stdout.strip().splitlines()[-1]
    version = yaml.safe_load((ROOT / "roles/router/defaults/main.yml").read_text())["router_version"]
    venv = tmp_path_factory.mktemp("smg") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels]
    proc = subprocess.run(pip + [f"smg=={version}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(venv / "bin/python")
