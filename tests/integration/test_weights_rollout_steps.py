"""The weights role's rollout entry points through ansible-playbook on localhost: `current` (does the host hold
the weights its new plan names?) and `prune` (the policy after a verified switch), check mode included."""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w

pytestmark = pytest.mark.integration

REPO = "local-org/tiny"
COMMIT = "c" * 40


def _publish(path, repo=REPO, commit=COMMIT):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    manifest = {
        "repo_id": repo,
        "revision": commit,
        "files": {"config.json": {"size": 2, "sha256": None, "git_sha1": w.git_blob_sha1(str(path / "config.json"))}},
    }
    (path / w.MARKER).write_text(json.dumps(w.marker_content(manifest, [], [], "now")))


CURRENT = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: fleetserve.minimax.weights
        tasks_from: current
      vars:
        preflight_plan: {hf_repo: %(repo)s, revision: %(revision)s, model_dir: %(dir)s}
        fleetserve_release_dir: %(releases)s
    - ansible.builtin.debug:
        msg: "CURRENT={{ weights_current | bool }}"
"""


def _current(run_playbook, **plan) -> bool:
    plan.setdefault("releases", "/nonexistent/fleetserve-releases")
    proc = run_playbook(CURRENT % plan)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("CURRENT=") == 1 and "changed=0" in proc.stdout
    return "CURRENT=True" in proc.stdout


def test_current_is_true_only_for_a_complete_copy_of_the_plans_repository_and_commit(tmp_path, run_playbook):
    held = tmp_path / "models" / "M--v2"
    _publish(held)
    assert _current(run_playbook, repo=REPO, revision="v2", dir=held) is True  # a tag: the commit it named
    assert _current(run_playbook, repo=REPO, revision=COMMIT, dir=held) is True
    assert _current(run_playbook, repo=REPO, revision="d" * 40, dir=held) is False  # another commit
    assert _current(run_playbook, repo="other/repo", revision="v2", dir=held) is False
    assert _current(run_playbook, repo=REPO, revision="v2", dir=tmp_path / "models" / "absent") is False
    (held / "config.json").write_text("{}\n")  # size changed
    assert _current(run_playbook, repo=REPO, revision="v2", dir=held) is False


PRUNE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: fleetserve.minimax.weights
        tasks_from: prune
      vars:
        fleetserve_release_dir: %(releases)s
"""


def test_current_is_true_for_the_weights_the_running_release_serves(tmp_path, run_playbook):
    """Weights placed without the weights role (no completion marker) that the host's verified release serves
    (current.json names the directory and revision) need no fetch; another directory or revision does."""
    releases, served = tmp_path / "releases", tmp_path / "models" / "M"
    releases.mkdir()
    served.mkdir(parents=True)
    case = dict(repo=REPO, revision="main", dir=served, releases=releases)
    assert _current(run_playbook, **case) is False
    (releases / "current.json").write_text(json.dumps({"model_dir": str(served), "revision": "main"}))
    assert _current(run_playbook, **case) is True
    assert _current(run_playbook, **{**case, "revision": "v2"}) is False
    assert _current(run_playbook, **{**case, "dir": tmp_path / "models" / "M--v2"}) is False
    # A record that cannot be read is no answer: the host fails, naming the file, before anything is drained.
    (releases / "current.json").write_text("{not json")
    proc = run_playbook(CURRENT % case)
    assert proc.returncode != 0 and "CURRENT=" not in proc.stdout
    assert "cannot read the release record %s" % (releases / "current.json") in proc.stdout + proc.stderr


def test_prune_keeps_the_running_and_the_previous_release_and_check_mode_removes_nothing(tmp_path, run_playbook):
    models, releases = tmp_path / "models", tmp_path / "releases"
    releases.mkdir()
    for name in ("M", "M--v2", "M--v3"):
        _publish(models / name)
    (releases / "weights-history.json").write_text(json.dumps({"used": [str(models / "M"), str(models / "M--v2")]}))
    (releases / "current.json").write_text(json.dumps({"model_dir": str(models / "M--v3")}))
    (releases / "previous.json").write_text(json.dumps({"model_dir": str(models / "M--v2")}))

    check = run_playbook(PRUNE % {"releases": releases}, check=True)
    assert check.returncode == 0 and "changed=1" in check.stdout, check.stdout
    assert sorted(p.name for p in models.iterdir()) == ["M", "M--v2", "M--v3"]

    real = run_playbook(PRUNE % {"releases": releases})
    assert real.returncode == 0 and "changed=1" in real.stdout, real.stdout
    assert sorted(p.name for p in models.iterdir()) == ["M--v2", "M--v3"]

    again = run_playbook(PRUNE % {"releases": releases})
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout

    zero = run_playbook(PRUNE % {"releases": releases}, "-e", "weights_keep_previous=0")
    assert (
        zero.returncode != 0
        and "weights_keep_previous is '0', out of range: set it to a whole number from 1 to 100" in zero.stdout
    )
    assert sorted(p.name for p in models.iterdir()) == ["M--v2", "M--v3"]
