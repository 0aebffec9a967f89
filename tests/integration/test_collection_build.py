"""The collection as users get it: built from what git ships, installed, documented by ansible-doc."""

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _tool(name):
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="module")
def built(collection_root, tmp_path_factory):
    stage = tmp_path_factory.mktemp("stage")
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=collection_root, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = collection_root / rel
        if src.is_file():
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
            dest.chmod(src.stat().st_mode)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [_tool("ansible-galaxy"), "collection", "build", str(stage), "--output-path", str(out)],
        check=True,
        capture_output=True,
    )
    tarball = next(out.glob("fleetserve-minimax-*.tar.gz"))
    install = tmp_path_factory.mktemp("install")
    subprocess.run(
        [
            _tool("ansible-galaxy"),
            "collection",
            "install",
            "--force",
            "--offline",
            "--no-deps",
            "-p",
            str(install),
            str(tarball),
        ],
        check=True,
        capture_output=True,
    )
    return tarball, install


def test_dev_files_are_not_shipped(built):
    tarball, _ = built
    names = tarfile.open(tarball).getnames()
    for dev in (
        "molecule/",
        "scripts/",
        "src/",
        "bench/",
        "tests/integration/",
        "tests/fixtures/",
        ".ci/",
        "pyproject.toml",
    ):
        assert not any(n.startswith(dev) for n in names), dev
    for shipped in (
        "roles/uv/tasks/main.yml",
        "roles/git_lfs/meta/argument_specs.yml",
        "playbooks/site.yml",
        "meta/runtime.yml",
    ):
        assert shipped in names


def test_ansible_doc_works_from_the_installed_tarball(built, collection_root):
    _, install = built
    env = {
        "ANSIBLE_COLLECTIONS_PATH": str(install),
        "PATH": "/usr/bin:/bin",
        "HOME": str(install),
        "ANSIBLE_NOCOLOR": "1",
    }
    modules = sorted(p.stem for p in (collection_root / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    listed = json.loads(
        subprocess.run(
            [_tool("ansible-doc"), "-t", "module", "-l", "fleetserve.minimax", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert sorted(name.split(".")[-1] for name in listed) == modules
    for module in modules:
        doc = subprocess.run(
            [_tool("ansible-doc"), "-t", "module", f"fleetserve.minimax.{module}", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(doc.stdout)[f"fleetserve.minimax.{module}"]
        assert data["doc"]["short_description"] and data["examples"] and data["return"] is not None, module
    roles = sorted(
        p.name for p in (collection_root / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists()
    )
    for role in roles:
        doc = subprocess.run(
            [_tool("ansible-doc"), "-t", "role", f"fleetserve.minimax.{role}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        text = doc.stdout.replace("*", "")  # ansible-doc marks names with * when colour is off
        assert f"ROLE: fleetserve.minimax.{role}" in text and "ENTRY POINT: main" in text, role
