"""Shared pytest fixtures: make the collection importable and runnable from the working tree.

The repository root is the collection ``fleetserve.minimax``. Ansible (and Python imports of
``ansible_collections.fleetserve.minimax``) need it at ``<path>/ansible_collections/fleetserve/minimax``;
a symlink under ``.cache/collections`` provides that without copying anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

COLLECTION_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = COLLECTION_ROOT / ".cache" / "collections"


def _link_collection() -> None:
    link = COLLECTIONS_PATH / "ansible_collections" / "fleetserve" / "minimax"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() or link.resolve() != COLLECTION_ROOT:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(COLLECTION_ROOT)
    if str(COLLECTIONS_PATH) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_PATH))
    # Subprocesses (ansible-playbook, ansible-doc) find the working tree through this.
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        p for p in (str(COLLECTIONS_PATH), os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")) if p
    )


_link_collection()
# Ansible's own collection finder, installed before any test module imports ansible_collections: a test that
# imports module_utils first would otherwise leave a plain namespace package behind, and in-process Templar
# runs later in the same session could not load the collection's filter plugins.
from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader([str(COLLECTIONS_PATH)])
# The CLI package lives in src/ (also pip-installed in the test venv; this keeps a bare checkout working).
sys.path.insert(0, str(COLLECTION_ROOT / "src"))


@pytest.fixture(scope="session")
def collection_root() -> Path:
    return COLLECTION_ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return COLLECTION_ROOT / "tests" / "fixtures"


@pytest.fixture()
def ansible_env(tmp_path) -> dict:
    """Environment for ansible-* subprocesses: this working tree as the collection, no colour."""
    env = dict(os.environ)
    # The Ansible tools of the interpreter running the tests (a venv need not be activated).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        ANSIBLE_COLLECTIONS_PATH=os.environ["ANSIBLE_COLLECTIONS_PATH"],
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"),
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    return env


@pytest.fixture()
def run_playbook(tmp_path, ansible_env):
    """Run ansible-playbook against localhost (local connection). Returns the CompletedProcess.

    ``playbook`` is a path or the YAML text of a playbook.
    """

    def _run(playbook, *extra_args, inventory: str | None = None, env: dict | None = None, check=False):
        path = Path(playbook) if isinstance(playbook, Path) or "\n" not in str(playbook) else None
        if path is None:
            path = tmp_path / "play.yml"
            path.write_text(textwrap.dedent(playbook))
        inv = inventory
        if inv is None:
            inv_path = tmp_path / "localhost.ini"
            inv_path.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
            inv = str(inv_path)
        cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", inv, str(path), *extra_args]
        if check:
            cmd.append("--check")
        return subprocess.run(
            cmd, env={**ansible_env, **(env or {})}, capture_output=True, text=True, timeout=600, check=False
        )

    return _run
