"""The switch's pure parts: what changes, atomic installs that keep the staged file's mode, the unit's action."""

import os
import stat

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _switch

pytestmark = pytest.mark.unit


def test_a_file_differing_in_mode_only_is_installed_with_the_staged_mode(tmp_path):
    staged, live = tmp_path / "staged", tmp_path / "live"
    staged.write_text("same\n")
    live.write_text("same\n")
    staged.chmod(0o600)
    live.chmod(0o644)
    to_install, to_link, to_remove = _switch.plan_switch([{"src": str(staged), "dest": str(live)}], None, [], [], "")
    assert to_install == [(str(staged), str(live))] and to_link is None and to_remove == []
    _switch.apply_switch(to_install, None, [])
    assert stat.S_IMODE(live.stat().st_mode) == 0o600 and staged.exists()
    assert _switch.plan_switch([{"src": str(staged), "dest": str(live)}], None, [], [], "")[0] == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary file left"


def test_the_link_replaces_a_venv_directory_of_the_old_layout(tmp_path):
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "python").write_text("")
    (tmp_path / "venv-2").mkdir()
    plan = _switch.plan_switch([], {"src": str(tmp_path / "venv-2"), "dest": str(tmp_path / "venv")}, [], [], "")
    _switch.apply_switch(*plan)
    assert os.readlink(tmp_path / "venv") == str(tmp_path / "venv-2")


def test_an_unstaged_file_is_refused_naming_the_fix(tmp_path):
    with pytest.raises(
        _switch.SwitchError, match="staged file .*missing.* not found: the release was not staged. Run stage."
    ):
        _switch.plan_switch(
            [{"src": str(tmp_path / "missing"), "dest": str(tmp_path / "x")}], None, [], [], "Run stage."
        )


@pytest.mark.parametrize(
    "active, changed, restart, action",
    [
        ("inactive", False, False, "start"),
        ("failed", True, False, "start"),
        ("active", True, False, "restart"),
        ("active", False, True, "restart"),
        ("active", False, False, None),
        ("activating", False, False, None),
    ],
)
def test_the_unit_is_started_restarted_or_left(active, changed, restart, action):
    assert _switch.service_action(active, changed, restart) == action
