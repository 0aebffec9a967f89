"""`ansible-playbook site.yml -i gpu_hosts`, exactly as the README's quick start writes it: from a directory
laid out like the repository root (site.yml, ansible.cfg, playbooks/), with gpu_hosts copied from
inventories/sample, and as the installed collection's fleetserve.minimax.site.

The sample's hosts do not exist, so the run stops short of connecting: --syntax-check, and --check with
--list-tasks, which resolves every import, role and tag of every play for every host of the inventory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _playbook(args, cwd, env):
    tool = str(Path(sys.executable).with_name("ansible-playbook"))
    return subprocess.run([tool, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture()
def user_root(collection_root, tmp_path):
    """What the user sees at the repository root after `cp -r inventories/sample gpu_hosts`."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("site.yml", "ansible.cfg"):
        shutil.copy(collection_root / name, root / name)
    os.symlink(collection_root / "playbooks", root / "playbooks")
    os.symlink(collection_root / ".cache", root / ".cache")  # ansible.cfg's collections_path (scripts/setup)
    shutil.copytree(collection_root / "inventories" / "sample", root / "gpu_hosts")
    return root


def test_site_yml_from_the_root_with_gpu_hosts(user_root, ansible_env):
    env = {k: v for k, v in ansible_env.items() if k != "ANSIBLE_COLLECTIONS_PATH"}  # ansible.cfg must suffice
    syntax = _playbook(["site.yml", "-i", "gpu_hosts", "--syntax-check"], user_root, env)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    listed = _playbook(["site.yml", "-i", "gpu_hosts", "--check", "--list-tasks"], user_root, env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for stage in ("Preflight", "Prerequisites", "Tooling", "Weights", "Engine", "Verify", "Router"):
        assert "play #" in listed.stdout and stage in listed.stdout, f"{stage} missing:\n{listed.stdout[-3000:]}"
    assert "fleetserve.minimax.preflight : Preflight | Read GPU facts" in listed.stdout


def test_the_installed_collection_playbook(user_root, ansible_env):
    listed = _playbook(["fleetserve.minimax.site", "-i", "gpu_hosts", "--list-hosts"], user_root, ansible_env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "h200-01.gpu.example.internal" in listed.stdout and "router-01.example.internal" in listed.stdout
