"""Where things live: the collection (this repository), the lab inventory, and the CLI's state."""

from __future__ import annotations

import os
from pathlib import Path

from fleetserve.errors import UserError

NAMESPACE, NAME = "fleetserve", "minimax"


def collection_root() -> Path:
    """The repository root, which is the collection. ``FLEETSERVE_HOME`` overrides the search."""
    override = os.environ.get("FLEETSERVE_HOME")
    candidates = [Path(override)] if override else list(Path(__file__).resolve().parents)
    for candidate in candidates:
        galaxy = candidate / "galaxy.yml"
        if galaxy.is_file() and f"namespace: {NAMESPACE}" in galaxy.read_text():
            return candidate
    raise UserError(
        "cannot find the fleetserve.minimax collection (a galaxy.yml with namespace fleetserve)",
        "run fleetserve from a checkout installed with `pip install -e .`, or set FLEETSERVE_HOME to the checkout",
    )


def state_dir() -> Path:
    """Run artifacts and the collections symlink: outside the repository, private to the user."""
    base = os.environ.get("FLEETSERVE_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "fleetserve"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def collections_path() -> Path:
    """A directory holding ``ansible_collections/fleetserve/minimax`` -> this checkout."""
    root = state_dir() / "collections"
    link = root / "ansible_collections" / NAMESPACE / NAME
    link.parent.mkdir(parents=True, exist_ok=True)
    target = collection_root()
    if not (link.is_symlink() and link.resolve() == target):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return root


def lab_inventory() -> Path:
    """The lab's inventory sits beside inventories/lab/group_vars, which hold its connection settings."""
    name = os.environ.get("FLEETSERVE_LAB", "fleetserve")
    filename = "hosts.yml" if name == "fleetserve" else f"hosts-{name}.yml"
    return collection_root() / "inventories" / "lab" / filename
