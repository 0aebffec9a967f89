"""The one-task fan-out: the schedule, and how a receiver waits for its source (fake clock, fake rsync)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights_fanout as f

pytestmark = pytest.mark.unit

HOSTS8 = ["h%d" % i for i in range(1, 9)]


def test_plan_for_eight_hosts_keeps_the_doubling_rounds_as_dependencies():
    plan = f.fanout_plan(["h1"], HOSTS8)
    assert plan["sources"] == {"h2": "h1", "h3": "h1", "h4": "h2", "h5": "h1", "h6": "h2", "h7": "h3", "h8": "h4"}
    # h3 is h1's second receiver: it starts once h1's first (h2) holds its copy, as in round 2.
    assert plan["after"] == {
        "h2": [],
        "h3": ["h2"],
        "h4": ["h2"],
        "h5": ["h3"],
        "h6": ["h2", "h4"],
        "h7": ["h3"],
        "h8": ["h4"],
    }
    assert plan["servers"] == ["h1", "h2", "h3", "h4"]


@pytest.mark.parametrize("n", range(1, 20))
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_no_host_ever_waits_for_a_later_host_so_few_forks_cannot_deadlock(n, degree):
    hosts = ["h%d" % i for i in range(1, n + 1)]
    plan = f.fanout_plan(["h1"], hosts, degree)
    assert set(plan["sources"]) == set(hosts[1:])
    for receiver, source in plan["sources"].items():
        assert hosts.index(source) < hosts.index(receiver)
        assert all(hosts.index(dep) < hosts.index(receiver) for dep in plan["after"][receiver])
        assert set(plan["after"][receiver]) <= set(plan["servers"])
    assert set(plan["sources"].values()) <= set(plan["servers"])


def test_hosts_that_already_hold_a_copy_feed_at_once_and_only_the_rest_receive():
    plan = f.fanout_plan(["h1", "h3"], ["h1", "h2", "h3", "h4", "h5"])
    assert plan == {
        "sources": {"h2": "h1", "h4": "h3", "h5": "h1"},
        "after": {"h2": [], "h4": [], "h5": ["h2"]},
        "servers": ["h1", "h2", "h3"],
    }


def test_nothing_to_do_when_every_host_holds_a_copy():
    assert f.fanout_plan(["h1", "h2"], ["h1", "h2"]) == {"sources": {}, "after": {}, "servers": []}


def test_a_corrupted_peer_is_fed_by_the_seed_alone():
    assert f.fanout_plan(["h1", "h3", "h4"], ["h1", "h2", "h3", "h4"]) == {
        "sources": {"h2": "h1"},
        "after": {"h2": []},
        "servers": ["h1"],
    }


@pytest.mark.parametrize(
    ("holders", "degree", "message"),
    [
        ([], 1, "no host holds a verified copy to fan out from: run the download on weights_seed_host first"),
        (["h1"], 0, "weights_fanout_degree is 0: set it to 1 or more"),
    ],
)
def test_plan_rejects_bad_input(holders, degree, message):
    with pytest.raises(ValueError) as exc:
        f.fanout_plan(holders, ["h1", "h2"], degree)
    assert str(exc.value) == message


def test_ready_documents_round_trip_and_other_runs_are_ignored():
    ok = json.dumps(f.ready_document("run1", True))
    assert f.read_ready(ok, "run1", "h2") is True
    assert f.read_ready(ok, "run0", "h2") is False
    assert f.read_ready('{"run": "run1", "st', "run1", "h2") is False  # half written: read again


def test_a_failed_source_fails_its_receivers_with_its_reason():
    text = json.dumps(f.ready_document("run1", False, "copying from peer x failed"))
    with pytest.raises(f.FanoutError) as exc:
        f.read_ready(text, "run1", "h2")
    assert str(exc.value) == (
        "h2, which this host copies from or waits for, failed: copying from peer x failed; "
        "fix h2 and run the play again"
    )
    # a failure announced by an earlier run is stale, not this run's
    assert f.read_ready(text, "run2", "h2") is False


@pytest.mark.parametrize(("rc", "outcome"), [(0, "fetched"), (23, "missing"), (10, "unreachable"), (35, "unreachable")])
def test_poll_outcomes(rc, outcome):
    assert f.poll_outcome(rc, "", "h2", "rsync://u@h2:8873/ready/m.json") == outcome


def test_an_auth_failure_is_not_waited_out():
    with pytest.raises(f.FanoutError) as exc:
        f.poll_outcome(5, "@ERROR: auth failed on module ready\n", "h2", "rsync://u@h2:8873/ready/m.json")
    assert str(exc.value) == (
        "the peer server of h2 refused rsync://u@h2:8873/ready/m.json (rsync rc 5: @ERROR: auth failed on module "
        "ready): every host must run the same fan-out; run the whole play again rather than a part of it"
    )


class FakePeers:
    """rsync polls answered from a script per URL; time passes only through sleep()."""

    def __init__(self, script):
        self.script = {url: list(answers) for url, answers in script.items()}
        self.now = 0.0
        self.polls = []

    def fetch(self, url):
        self.polls.append((self.now, url))
        answers = self.script[url]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def clock(self):
        return self.now

    def sleep(self, s):
        self.now += s


READY = (0, json.dumps(f.ready_document("r", True)), "")
MISSING = (23, "", 'rsync: link_stat "/m.json" (in ready) failed: No such file or directory (2)')
REFUSED = (10, "", "rsync: failed to connect to h2 (10.0.0.2): Connection refused (111)")


def test_waits_until_every_host_announces_then_returns_the_time_waited():
    peers = FakePeers({"u2": [MISSING, MISSING, READY], "u3": [REFUSED, READY]})
    waited = f.wait_for_hosts([("h2", "u2"), ("h3", "u3")], "r", peers.fetch, peers.clock, peers.sleep, timeout=60)
    assert waited == pytest.approx(1.25)  # 0.5 then 0.75: polls back off
    assert [u for _t, u in peers.polls] == ["u2", "u3", "u2", "u3", "u2"]


def test_an_announcement_from_another_run_does_not_count():
    stale = (0, json.dumps(f.ready_document("old", True)), "")
    peers = FakePeers({"u2": [stale]})
    with pytest.raises(f.FanoutError) as exc:
        f.wait_for_hosts([("h2", "u2")], "r", peers.fetch, peers.clock, peers.sleep, timeout=30)
    assert str(exc.value) == (
        "waited 30 s for h2 to announce a verified copy, in vain: look at h2's result in this play, "
        "or raise weights_fanout_timeout if its copy is only slow"
    )


def test_timeout_names_every_host_still_pending():
    peers = FakePeers({"u2": [MISSING], "u3": [MISSING], "u4": [READY]})
    with pytest.raises(f.FanoutError, match=r"^waited 10 s for h2 and h3 to announce a verified copy, in vain: "):
        f.wait_for_hosts([("h2", "u2"), ("h3", "u3"), ("h4", "u4")], "r", peers.fetch, peers.clock, peers.sleep, 10)


def test_a_peer_server_that_stays_down_fails_after_the_grace_not_the_timeout():
    peers = FakePeers({"u2": [REFUSED]})
    with pytest.raises(f.FanoutError) as exc:
        f.wait_for_hosts([("h2", "u2")], "r", peers.fetch, peers.clock, peers.sleep, timeout=3600, unreachable_grace=20)
    assert str(exc.value) == (
        "cannot reach the peer server of h2 at u2 for 20 s (rsync rc 10: rsync: failed to connect to h2 (10.0.0.2): "
        "Connection refused (111)): check that its peer server is running and that weights_fanout_port is open "
        "between the hosts"
    )
    assert peers.now < 30


def test_a_source_failing_while_we_wait_ends_the_wait_at_once():
    failed = (0, json.dumps(f.ready_document("r", False, "disk full")), "")
    peers = FakePeers({"u2": [MISSING, MISSING, failed]})
    with pytest.raises(f.FanoutError, match="^h2, which this host copies from or waits for, failed: disk full;"):
        f.wait_for_hosts([("h2", "u2")], "r", peers.fetch, peers.clock, peers.sleep, timeout=3600)
    assert peers.now < 2


def test_the_wait_backs_off_to_at_most_max_delay():
    now, sleeps = [0.0], []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    with pytest.raises(f.FanoutError, match="in vain"):
        f.wait_for_hosts([("h1", "u")], "r1", lambda url: (23, "", ""), lambda: now[0], sleep, 20.0, max_delay=1.0)
    assert sleeps[:3] == [0.5, 0.75, 1.0] and max(sleeps) == 1.0
