"""Resolve and validate the inventory before anything runs, so bad input fails with one clear message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fleetserve import paths
from fleetserve.errors import UserError


def resolve(inventory: str | None) -> Path:
    """The inventory to use: the one given, or the local lab's when none is given."""
    if inventory:
        path = Path(inventory).expanduser()
        if not path.exists():
            raise UserError(
                f"inventory {inventory} not found",
                "pass -i with an existing inventory file or directory (see inventories/sample/), "
                "or leave -i out to use the local lab after `fleetserve lab up`",
            )
        return path
    lab = paths.lab_inventory()
    if not lab.exists():
        raise UserError(
            "no inventory given and the local lab is not up",
            "run `fleetserve lab up` first, or pass -i INVENTORY for real hosts",
        )
    return lab


def _ansible_inventory() -> str:
    beside = Path(sys.executable).with_name("ansible-inventory")
    found = str(beside) if beside.exists() else shutil.which("ansible-inventory")
    if not found:
        raise UserError("ansible-inventory not found", "install the controller requirements: pip install -e .")
    return found


def hosts(inventory: Path, limit: str | None = None) -> list[str]:
    """Parse the inventory exactly as ansible-playbook will; fail on any source it cannot parse."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_INVENTORY_UNPARSED_FAILED="True",
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="True",
        ANSIBLE_CONFIG=str(paths.collection_root() / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(paths.collections_path()),
        ANSIBLE_NOCOLOR="1",
    )
    cmd = [_ansible_inventory(), "-i", str(inventory), "--list"]
    if limit:
        cmd += ["--limit", limit]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = "\n".join(line for line in proc.stderr.splitlines() if line.strip())[-1500:]
        raise UserError(
            f"inventory {inventory} could not be parsed:\n{detail}",
            "fix the inventory (check its YAML/INI syntax with `ansible-inventory -i FILE --graph`)",
        )
    data = json.loads(proc.stdout or "{}")
    names = sorted((data.get("_meta") or {}).get("hostvars", {}).keys() | _group_hosts(data))
    if limit and not names:
        raise UserError(f"--limit {limit} matches no host in {inventory}", "check the host or group name")
    if not names:
        raise UserError(f"inventory {inventory} has no hosts", "add hosts, or run `fleetserve lab up`")
    return names


def _group_hosts(data: dict) -> set[str]:
    return {h for group, body in data.items() if group != "_meta" for h in (body or {}).get("hosts", [])}
