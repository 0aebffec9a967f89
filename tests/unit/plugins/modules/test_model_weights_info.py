"""model_weights_info: reads only, reports every problem, fails with the fix named."""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.modules import model_weights_info

pytestmark = pytest.mark.unit

COMMIT = "d" * 40


@pytest.fixture()
def snapshot(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    manifest = {
        "repo_id": "org/m",
        "revision": COMMIT,
        "files": {"a.bin": {"size": 3, "sha256": hashlib.sha256(b"abc").hexdigest(), "git_sha1": None}},
    }
    return tmp_path, manifest


def run_module(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        model_weights_info.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = exc.value.code
    return out


def test_good_snapshot_with_given_manifest(snapshot, capsys):
    root, manifest = snapshot
    before = sorted(p.name for p in root.iterdir())
    out = run_module(capsys, path=str(root), manifest=manifest, _ansible_check_mode=True)
    assert (out["rc"], out["ok"], out["changed"], out["revision"], out["hashed"]) == (0, True, False, COMMIT, True)
    assert sorted(p.name for p in root.iterdir()) == before


def test_manifest_comes_from_the_marker_when_not_given(snapshot, capsys):
    root, manifest = snapshot
    (root / w.MARKER).write_text(json.dumps(w.marker_content(manifest, [], [], "now")))
    out = run_module(capsys, path=str(root))
    assert (out["ok"], out["repo_id"], out["revision"]) == (True, "org/m", COMMIT)


def test_without_marker_or_manifest_the_snapshot_is_incomplete(snapshot, capsys):
    root, _manifest = snapshot
    out = run_module(capsys, path=str(root))
    assert out["rc"] == 1
    assert (
        out["msg"]
        == "no completion marker .fleetserve-weights.json: the snapshot is incomplete; run the weights role again"
    )


def test_mismatch_fails_naming_the_file_and_the_fix(snapshot, capsys):
    root, manifest = snapshot
    (root / "a.bin").write_bytes(b"abd")
    out = run_module(capsys, path=str(root), manifest=manifest)
    assert out["rc"] == 1 and out["ok"] is False and out["changed"] is False
    assert out["msg"] == (
        "%s does not match org/m@%s: 1 problem(s), first: a.bin sha256 (sha256 %s, the hub says %s); "
        "run the weights role to fetch it again"
        % (root, COMMIT, hashlib.sha256(b"abd").hexdigest(), hashlib.sha256(b"abc").hexdigest())
    )


def test_report_only_mode_does_not_fail(snapshot, capsys):
    root, manifest = snapshot
    (root / "a.bin").unlink()
    out = run_module(capsys, path=str(root), manifest=manifest, fail_on_problems=False)
    assert out["rc"] == 0 and out["ok"] is False
    assert out["problems"] == [{"path": "a.bin", "problem": "missing", "detail": "expected 3 bytes"}]


def test_size_only_mode_skips_hashing(snapshot, capsys):
    root, manifest = snapshot
    (root / "a.bin").write_bytes(b"abd")
    out = run_module(capsys, path=str(root), manifest=manifest, full=False)
    assert (out["ok"], out["hashed"]) == (True, False)


def test_release_record_read_in_the_same_call(snapshot, capsys, tmp_path_factory):
    root, manifest = snapshot
    records = tmp_path_factory.mktemp("release")
    record = records / "current.json"
    # No record yet: an empty release, and the snapshot's own failure (no marker) still carries it.
    out = run_module(capsys, path=str(root), full=False, fail_on_problems=False, release_record=str(record))
    assert out["rc"] == 1 and out["release"] == {} and "no completion marker" in out["msg"]
    record.write_text(json.dumps({"model_dir": str(root), "revision": "main"}))
    out = run_module(capsys, path=str(root), manifest=manifest, release_record=str(record))
    assert out["rc"] == 0 and out["ok"] and out["release"] == {"model_dir": str(root), "revision": "main"}
    # Without the option nothing is read and nothing returned.
    assert "release" not in run_module(capsys, path=str(root), manifest=manifest)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_release_record_fails_naming_the_file(snapshot, capsys, tmp_path_factory, content):
    root, manifest = snapshot
    record = tmp_path_factory.mktemp("release") / "current.json"
    record.write_text(content)
    out = run_module(capsys, path=str(root), manifest=manifest, fail_on_problems=False, release_record=str(record))
    assert out["rc"] == 1 and "release" not in out
    assert str(record) in out["msg"] and "fix or remove the file" in out["msg"]
