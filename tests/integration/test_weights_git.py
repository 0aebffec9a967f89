"""hf_snapshot method=git: guide A's `git clone` path against a real Git LFS remote (file://), one copy on disk."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from test_weights_olah import _load_maker, digests, failure_msg, leftovers, result_of

pytestmark = pytest.mark.integration

REPO = "local-org/git-m2"


def git(*args, cwd=None):
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t.invalid",
    )
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A bare repo with LFS-tracked shards at <root>/local-org/git-m2; the objects pushed to its LFS store."""
    git("lfs", "version")  # fails the test when git-lfs is missing
    base = tmp_path_factory.mktemp("lfs")
    src = base / "src"
    _load_maker().make_repo(src, shards=3, shard_mb=1)
    git("init", "-q", "-b", "main", cwd=src)
    git("lfs", "install", "--local", cwd=src)
    git("lfs", "track", "*.safetensors", cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-q", "-m", "init", cwd=src)
    bare = base / "root" / REPO
    bare.parent.mkdir(parents=True)
    git("clone", "-q", "--bare", str(src), str(bare))
    git("lfs", "push", "--all", "file://%s" % bare, cwd=src)
    return {"endpoint": "file://%s" % (base / "root"), "src": src, "commit": git("rev-parse", "HEAD", cwd=src)}


def play(dest, remote, **extra):
    args = {"repo_id": REPO, "dest": str(dest), "endpoint": remote["endpoint"], "method": "git", "retries": 0}
    args.update(extra)
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Weights | Clone the snapshot
      fleetserve.minimax.hf_snapshot: %s
      register: snap
    - name: Weights | Show the result
      ansible.builtin.debug:
        msg: "RESULT {{ snap | dict2items | rejectattr('key', 'eq', 'manifest') | items2dict | to_json }}"
""" % json.dumps(args)


def test_git_clone_path_keeps_one_copy_and_is_idempotent(remote, tmp_path, run_playbook):
    dest = tmp_path / "models" / "git-m2"
    first = result_of(run_playbook(play(dest, remote)))
    assert first["changed"] is True and first["revision"] == remote["commit"]
    want = {k: v for k, v in digests(remote["src"]).items() if k != ".gitattributes"}
    assert digests(dest) == want
    # git-lfs hard-links from a file:// remote on the same filesystem, so st_nlink counts the remote's
    # copies: count what sits under the models directory instead.
    inodes = [p.stat().st_ino for p in (tmp_path / "models").rglob("*") if p.is_file()]
    assert len(inodes) == len(set(inodes)), "a weight is on disk twice under the models directory"
    assert leftovers(tmp_path / "models") == ["git-m2"], "clone or staging left behind"
    marker = json.loads((dest / ".fleetserve-weights.json").read_text())
    assert all(marker["files"][k]["sha256"] for k in marker["files"] if k.endswith(".safetensors"))

    again = result_of(run_playbook(play(dest, remote)))
    assert again["changed"] is False


def test_git_path_refetches_a_corrupted_shard(remote, tmp_path, run_playbook):
    dest = tmp_path / "git-m2"
    result_of(run_playbook(play(dest, remote)))
    shard = dest / "model-00003-of-00003.safetensors"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    # Replace rather than write in place: git-lfs hard-links objects from a file:// remote on the same
    # filesystem, and an in-place write would corrupt the remote too.
    shard.unlink()
    shard.write_bytes(bytes(data))
    fixed = result_of(run_playbook(play(dest, remote)))
    assert fixed["changed"] is True
    assert digests(dest)[shard.name] == digests(remote["src"])[shard.name]


def test_git_path_unknown_revision(remote, tmp_path, run_playbook):
    msg = failure_msg(run_playbook(play(tmp_path / "m", remote, revision="nope")))
    assert msg == (
        "revision 'nope' does not exist in %s: set preflight_revision (or weights_revision, which "
        "overrides it for the weights role alone) to a branch, tag or commit of that repository" % REPO
    )
    assert not (tmp_path / "m").exists()
