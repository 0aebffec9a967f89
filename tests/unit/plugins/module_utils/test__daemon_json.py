"""_daemon_json: merging never drops a key, bad files fail with the fix, reload vs restart."""

import json

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _daemon_json as dj

pytestmark = pytest.mark.unit

PATH = "/etc/docker/daemon.json"


def test_merge_keeps_user_keys_at_every_depth():
    current = {
        "data-root": "/data/docker",
        "runtimes": {"crun": {"path": "/usr/bin/crun"}},
        "log-opts": {"max-size": "10m", "labels": "team"},
    }
    wanted = {
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
        "log-opts": {"max-size": "100m"},
    }
    assert dj.merge(current, wanted) == {
        "data-root": "/data/docker",
        "runtimes": {"crun": {"path": "/usr/bin/crun"}, "nvidia": {"path": "nvidia-container-runtime", "args": []}},
        "log-opts": {"max-size": "100m", "labels": "team"},
    }
    assert current["runtimes"] == {"crun": {"path": "/usr/bin/crun"}}, "input must not be mutated"


def test_lists_and_scalars_replace():
    assert dj.merge({"dns": ["1.1.1.1"], "debug": True}, {"dns": ["8.8.8.8"], "debug": False}) == {
        "dns": ["8.8.8.8"],
        "debug": False,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"live-restore": true,}',
            f"{PATH} is not valid JSON (line 1, column 23: Expecting property name enclosed in double quotes); "
            "dockerd refuses to start with it. Fix the file by hand (or move it away) and rerun.",
        ),
        (
            "{\n  'a': 1\n}",
            f"{PATH} is not valid JSON (line 2, column 3: Expecting property name enclosed in double quotes); "
            "dockerd refuses to start with it. Fix the file by hand (or move it away) and rerun.",
        ),
        (
            "[1, 2]",
            f"{PATH} must hold a JSON object, not a list: replace its content with {{...}} of daemon options and rerun.",
        ),
    ],
)
def test_bad_files_name_the_fix(text, message):
    with pytest.raises(ValueError) as err:
        dj.plan(text, {"live-restore": True}, PATH)
    assert str(err.value) == message


def test_empty_file_is_an_empty_config():
    result = dj.plan("  \n", {"live-restore": True}, PATH)
    assert result["after"] == {"live-restore": True}
    assert result["changed"] is True
    assert result["changed_keys"] == ["live-restore"]


def test_missing_file_is_created_even_when_nothing_to_merge():
    assert dj.plan(None, {}, PATH)["changed"] is True


def test_same_content_in_other_layout_is_unchanged():
    text = '{"log-driver":"json-file","live-restore":true}'
    result = dj.plan(text, {"live-restore": True}, PATH)
    assert result["changed"] is False
    assert result["changed_keys"] == []


def test_render_is_stable_and_sorted():
    assert dj.render({"b": 1, "a": {"d": 2, "c": 3}}) == json.dumps({"a": {"c": 3, "d": 2}, "b": 1}, indent=2) + "\n"


@pytest.mark.parametrize(
    ("wanted", "keys", "reload_ok"),
    [
        ({"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}, ["runtimes"], True),
        ({"live-restore": True, "default-runtime": "nvidia"}, ["default-runtime", "live-restore"], True),
        ({"log-opts": {"max-size": "100m"}}, ["log-opts"], False),
        ({"data-root": "/x", "debug": True}, ["data-root", "debug"], False),
    ],
)
def test_reload_is_enough_only_for_reloadable_keys(wanted, keys, reload_ok):
    result = dj.plan("{}", wanted, PATH)
    assert result["changed_keys"] == keys
    assert result["reload_sufficient"] is reload_ok


def test_config_must_be_a_mapping():
    with pytest.raises(ValueError) as err:
        dj.plan("{}", ["live-restore"], PATH)
    assert str(err.value) == "config must be a dict of daemon options, got list: pass a YAML mapping."
