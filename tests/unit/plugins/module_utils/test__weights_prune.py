"""The prune policy: never the running or the recorded previous release, keep_previous most recent others."""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights_prune as wp

pytestmark = pytest.mark.unit

A, B, C, D = "/m/A", "/m/B", "/m/C", "/m/D"


def test_keep_one_previous_drops_what_came_before_it():
    used, remove = wp.decide([A, B], current=C, previous=B, protect=[], keep_previous=1)
    assert (used, remove) == ([B, C], [A])


def test_keep_two_keeps_the_two_most_recently_used():
    used, remove = wp.decide([A, B, C], current=D, previous=C, protect=[], keep_previous=2)
    assert (used, remove) == ([B, C, D], [A])


def test_previous_json_is_kept_even_when_something_was_used_after_it():
    # After a rollback to B from C, previous.json still names B while this switch runs; C is protected.
    used, remove = wp.decide([A, B, C], current=B, previous=B, protect=[C], keep_previous=1)
    assert remove == [A] and used == [C, B]


def test_protected_and_running_are_never_removed_whatever_the_order():
    used, remove = wp.decide([C, B, A], current=A, previous=None, protect=[C], keep_previous=1)
    assert (used, remove) == ([C, A], [B])  # protected C was used last before A: it is the kept previous one
    used, remove = wp.decide([C, B, D, A], current=A, previous=None, protect=[C], keep_previous=2)
    assert (used, remove) == ([D, C, A], [B])


def test_without_a_running_release_on_record_nothing_is_removed():
    assert wp.decide([A, B], current=None, previous=B, protect=[], keep_previous=1) == ([A, B], [])


def test_a_re_run_removes_nothing_more():
    used, removed = wp.decide([A, B], current=C, previous=B, protect=[], keep_previous=1)
    assert removed == [A]
    assert wp.decide(used, current=C, previous=B, protect=[], keep_previous=1) == ([B, C], [])


@pytest.mark.parametrize("bad", [0, -1, True, "1"])
def test_keep_previous_below_one_is_refused_with_the_reason(bad):
    with pytest.raises(w.WeightsError) as err:
        wp.decide([], current=A, previous=None, protect=[], keep_previous=bad)
    assert str(err.value) == (
        "weights_keep_previous is %r: set it to 1 or more; the recorded previous release (previous.json) is what a "
        "rollback returns to without a download, so its weights are always kept" % (bad,)
    )


def test_record_dir_reads_the_release_record():
    assert wp.record_dir({"model_dir": "/m/A/"}) == A
    assert wp.record_dir({"plan": {"model_dir": B}}) == B
    assert wp.record_dir({"model_dir": "relative"}) is None
    assert wp.record_dir(None) is None


def test_only_a_published_copy_is_removable(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / w.MARKER).write_text(json.dumps({"complete": True}))
    (tmp_path / "theirs").mkdir()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / w.MARKER).write_text("{")
    assert [wp.removable(str(tmp_path / n)) for n in ("mine", "theirs", "half", "absent")] == [
        True,
        False,
        False,
        False,
    ]


def test_a_broken_history_is_refused_naming_the_file(tmp_path):
    (tmp_path / wp.HISTORY).write_text('["x"]')
    with pytest.raises(w.WeightsError) as err:
        wp.read_history(str(tmp_path))
    assert str(err.value).startswith("%s is not a weights history" % (tmp_path / wp.HISTORY))
