"""`fleetserve lab up --vllm N`, without Docker: the refusals, the inventory group the vLLM hosts' settings
hang on (resolved by ansible-inventory against the committed group_vars), and the images' names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetserve import lab, paths
from fleetserve.errors import UserError

pytestmark = pytest.mark.unit


def test_vllm_hosts_must_be_workers_with_a_driver():
    with pytest.raises(UserError, match=r"--vllm must be between 0 and --hosts \(2\), got 3"):
        lab.up(2, vllm=3)
    with pytest.raises(UserError, match="--vllm and --bare cannot be combined"):
        lab.up(2, vllm=1, bare=True)


def test_vllm_hosts_get_the_vllm_settings_and_the_others_stay_sglang(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEETSERVE_LAB", "unit-test-vllm")
    monkeypatch.setenv("FLEETSERVE_STATE_DIR", str(tmp_path / "state"))
    path = lab.write_inventory(
        ["x-lab-1", "x-lab-2"], ["x-lab-router-1"], hub_url="http://172.30.0.1:18300", api_key="k", vllm=["x-lab-2"]
    )
    try:
        ansible_inventory = Path(sys.executable).with_name("ansible-inventory")
        env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_WARNING="false")

        def host_vars(host):
            out = subprocess.run(
                [str(ansible_inventory), "-i", str(path), "--host", host],
                capture_output=True,
                text=True,
                check=True,
                env=env,
                cwd=paths.collection_root(),
            )
            return json.loads(out.stdout)

        vllm, sglang = host_vars("x-lab-2"), host_vars("x-lab-1")
        assert vllm["preflight_engine"] == "vllm" and sglang["preflight_engine"] == "sglang"
        assert (vllm["vllm_docker_image_repository"], vllm["vllm_docker_pull"]) == (lab.VLLM_REPOSITORY, "never")
        assert "vllm_docker_pull" not in sglang
        groups = subprocess.run(
            [str(ansible_inventory), "-i", str(path), "--graph", "lab_workers"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        assert "@lab_vllm:" in groups and "x-lab-1" in groups  # the router's workers include the vLLM hosts
    finally:
        path.unlink()


def test_the_images_are_the_catalogs_default_vllm_release():
    images = lab.vllm_images()
    version = lab.vllm_version()
    assert version.count(".") == 2
    assert images == {
        "current": f"{lab.VLLM_REPOSITORY}:v{version}",
        "rebuilt": f"{lab.VLLM_REPOSITORY}:v{version}-r2",
        "crashing": f"{lab.VLLM_REPOSITORY}:v{version}-crash",
    }
