"""weights_prune on real directories: the policy end to end, check mode, idempotence."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights_prune as wp
from ansible_collections.fleetserve.minimax.plugins.modules import weights_prune

pytestmark = pytest.mark.unit


def run_module(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        weights_prune.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = exc.value.code
    return out


@pytest.fixture()
def host(tmp_path):
    models, releases = tmp_path / "models", tmp_path / "releases"
    releases.mkdir()
    for name in ("M", "M--v2", "M--v3"):
        (models / name).mkdir(parents=True)
        (models / name / "model.safetensors").write_bytes(b"x" * 100)
        (models / name / w.MARKER).write_text(json.dumps({"complete": True}))
    (models / "operator-files").mkdir()

    def switch(current, previous):
        (releases / "current.json").write_text(json.dumps({"model_dir": str(models / current)}))
        (releases / "previous.json").write_text(json.dumps({"model_dir": str(models / previous)}))

    return models, releases, switch


def test_two_rollouts_then_the_oldest_weights_go_and_the_previous_stay(host, capsys):
    models, releases, switch = host
    switch("M--v2", "M")
    first = run_module(capsys, release_dir=str(releases))
    assert (first["rc"], first["removed"], first["changed"]) == (0, [], True)  # history recorded
    switch("M--v3", "M--v2")
    check = run_module(capsys, release_dir=str(releases), _ansible_check_mode=True)
    assert check["removed"] == [str(models / "M")] and (models / "M").is_dir()
    second = run_module(capsys, release_dir=str(releases))
    assert second["removed"] == [str(models / "M")] and second["freed_bytes"] > 100
    assert sorted(p.name for p in models.iterdir()) == ["M--v2", "M--v3", "operator-files"]
    assert json.loads((releases / wp.HISTORY).read_text())["used"] == [str(models / "M--v2"), str(models / "M--v3")]
    again = run_module(capsys, release_dir=str(releases))
    assert (again["changed"], again["removed"]) == (False, [])


def test_a_directory_without_the_marker_is_never_removed(host, capsys):
    models, releases, switch = host
    (releases / wp.HISTORY).write_text(json.dumps({"used": [str(models / "operator-files"), str(models / "M")]}))
    switch("M--v3", "M--v2")
    out = run_module(capsys, release_dir=str(releases))
    assert out["removed"] == [str(models / "M")] and out["skipped"] == [str(models / "operator-files")]
    assert (models / "operator-files").is_dir()


def test_without_current_json_nothing_happens(tmp_path, capsys):
    out = run_module(capsys, release_dir=str(tmp_path))
    assert (out["rc"], out["changed"], out["removed"]) == (0, False, [])


def test_keep_previous_zero_fails_naming_the_variable(tmp_path, capsys):
    out = run_module(capsys, release_dir=str(tmp_path), keep_previous=0)
    assert out["rc"] == 1 and "keep_previous is 0, out of range: set it to a whole number from 1 to 100" in out["msg"]
