"""The streamed fan-out copy: files taken from a source that is still filling its staging area (fake clock)."""

from __future__ import annotations

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights_fanout as f

pytestmark = pytest.mark.unit


class Source:
    """A source whose staging area gains one file per poll, then announces; the receiver's side is a dict."""

    def __init__(self, files, bad=(), announce_after=None):
        self.files, self.bad = list(files), set(bad)
        self.landed, self.held, self.pulls, self.polls = [], {}, [], 0
        self.announce_after = len(self.files) if announce_after is None else announce_after
        self.now = 0.0

    def state(self):
        self.polls += 1
        if self.polls > self.announce_after:
            return "ready"
        if self.files:
            self.landed.append(self.files.pop(0))
        return "waiting"

    def pull(self, paths):
        self.pulls.append(list(paths))
        for p in paths:
            if p in self.landed:
                self.held[p] = "bad" if p in self.bad else "good"

    def arrived(self, paths):
        verified = [p for p in paths if self.held.get(p) == "good"]
        rejected = [p for p in paths if self.held.get(p) == "bad"]
        for p in rejected:
            del self.held[p]
        return verified, rejected

    def clock(self):
        return self.now

    def sleep(self, s):
        self.now += s


def stream(src, pending, timeout=100.0):
    return f.stream_copy(pending, src.state, src.pull, src.arrived, src.clock, src.sleep, timeout)


def test_every_file_is_taken_as_it_lands_and_only_missing_files_are_asked_for():
    src = Source(["a", "b", "c"])
    assert stream(src, {"a", "b", "c"}) == set()
    assert src.pulls == [["a", "b", "c"], ["b", "c"], ["c"]]
    assert src.now == 0  # a file arrived on every pass: no pause between passes


def test_streaming_stops_when_the_source_announces_and_returns_what_is_still_missing():
    src = Source(["a", "b", "c"], announce_after=1)
    assert stream(src, {"a", "b", "c"}) == {"b", "c"}


def test_a_file_that_fails_its_hash_is_left_for_the_copy_after_the_announcement():
    src = Source(["a", "b"], bad={"a"}, announce_after=10)
    assert stream(src, {"a", "b"}) == {"a"}
    assert all("a" not in pull for pull in src.pulls[1:])  # not pulled over and over while streaming


def test_passes_without_progress_pause_and_the_timeout_ends_streaming():
    src = Source([], announce_after=10**9)
    assert stream(src, {"a"}, timeout=3.0) == {"a"}
    assert src.now >= 3.0 and len(src.pulls) == 6  # one pass per 0.5 s


@pytest.mark.parametrize("state", ["ready", "unreachable"])
def test_nothing_is_pulled_once_the_source_is_not_filling(state):
    pulls = []
    left = f.stream_copy({"a"}, lambda: state, pulls.append, None, lambda: 0.0, None, 10.0)
    assert left == {"a"} and pulls == []


def test_a_source_announcing_failure_ends_the_copy_with_its_reason():
    def failed():
        return f.read_ready('{"run": "r1", "state": "failed", "message": "disk full"}', "r1", "h1")

    with pytest.raises(f.FanoutError, match="h1, which this host copies from or waits for, failed: disk full"):
        f.stream_copy({"a"}, failed, None, None, lambda: 0.0, None, 10.0)


def test_the_seed_that_downloads_in_the_background_is_waited_for_by_its_receivers():
    hosts = ["h%d" % i for i in range(1, 5)]
    assert f.fanout_plan(["h1"], hosts)["after"] == {"h2": [], "h3": ["h2"], "h4": ["h2"]}
    plan = f.fanout_plan(["h1"], hosts, announcing=["h1"])
    assert plan["after"] == {"h2": ["h1"], "h3": ["h1", "h2"], "h4": ["h2"]}
    assert plan["servers"] == ["h1", "h2"]


def test_only_holders_can_announce_beforehand():
    with pytest.raises(ValueError, match="h3"):
        f.fanout_plan(["h1"], ["h1", "h2", "h3"], announcing=["h3"])
