"""_router_worker.move against a scripted gateway: what is sent, in which order, and what it waits for."""

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils._router_worker import (
    RouterWorkerError,
    has_left,
    move,
)
from fake_clock import FakeClock

pytestmark = pytest.mark.unit

URL = "http://10.0.0.5:8000"
OTHER = {"id": "o1", "url": "http://10.0.0.6:8000", "status": "ready", "is_healthy": True}


class Gateway:
    """Answers GET /workers with the next listing of `listings` (the last one repeats); records every call."""

    def __init__(self, *listings, status=None):
        self.listings = [list(entries) + [OTHER] for entries in listings]
        self.calls = []
        self.status = status or {}

    def __call__(self, method, path, body):
        self.calls.append((method, path, body))
        if method == "GET":
            listing = self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]
            return 200, {"workers": listing}
        return self.status.get(method, 202), None

    def writes(self):
        return [call for call in self.calls if call[0] != "GET"]


def entry(status="ready", healthy=True, wid="w1"):
    return {"id": wid, "url": URL, "status": status, "is_healthy": healthy}


def run(gateway, action, **kwargs):
    clock = FakeClock()
    return move(gateway, URL, action, sleep=clock.sleep, clock=clock, **kwargs)


def test_leave_deletes_the_serving_entry_and_waits_until_it_is_gone():
    gateway = Gateway([entry()], [entry("draining")], [entry("draining")], [])
    result = run(gateway, "leave")
    assert gateway.writes() == [("DELETE", "/workers/w1", None)]
    assert result["changed"] is True and result["entries"] == []
    assert result["waited_s"] == 1.0  # two polls of 0.5 s while it drained


def test_leave_until_draining_returns_as_soon_as_the_gateway_stops_routing_to_it():
    gateway = Gateway([entry()], [entry("draining")])
    result = run(gateway, "leave", until="draining")
    assert result["changed"] is True and result["entries"] == [entry("draining")]
    assert [c[0] for c in gateway.calls] == ["GET", "DELETE", "GET"]


def test_leave_of_a_worker_already_gone_changes_nothing():
    gateway = Gateway([])
    assert run(gateway, "leave") == {"changed": False, "entries": [], "waited_s": 0.0}
    assert gateway.writes() == []


def test_leave_of_a_draining_worker_waits_without_a_second_delete():
    gateway = Gateway([entry("draining")], [])
    result = run(gateway, "leave")
    assert result["changed"] is False and gateway.writes() == []


def test_join_waits_for_the_draining_entry_then_adds_the_worker_with_the_key():
    gateway = Gateway([entry("draining")], [entry("draining")], [], [entry(healthy=False, wid="w2")], [entry(wid="w2")])
    result = run(gateway, "join", api_key="sk-test")
    assert gateway.writes() == [("POST", "/workers", {"url": URL, "api_key": "sk-test"})]
    assert result["changed"] is True and result["entries"] == [entry(wid="w2")]


def test_join_of_a_listed_worker_only_waits_until_it_is_healthy():
    gateway = Gateway([entry(healthy=False)], [entry()])
    result = run(gateway, "join")
    assert result["changed"] is False and gateway.writes() == []


def test_join_without_a_key_sends_only_the_url():
    gateway = Gateway([], [entry()])
    run(gateway, "join")
    assert gateway.writes() == [("POST", "/workers", {"url": URL})]


SETTLE_0 = {"health": {"drain_settle_secs": 0}}


def test_leave_with_a_settle_time_sets_it_on_each_serving_entry_before_its_delete():
    gateway = Gateway([entry(), entry("draining", wid="w0"), entry(wid="w2")], [])
    result = run(gateway, "leave", drain_settle_s=0)
    assert gateway.writes() == [
        ("PATCH", "/workers/w1", SETTLE_0),
        ("DELETE", "/workers/w1", None),
        ("PATCH", "/workers/w2", SETTLE_0),
        ("DELETE", "/workers/w2", None),
    ]
    assert result["changed"] is True and result["entries"] == []


def test_join_with_a_settle_time_registers_the_worker_with_it():
    gateway = Gateway([], [entry()])
    run(gateway, "join", api_key="sk-test", drain_settle_s=3)
    assert gateway.writes() == [
        ("POST", "/workers", {"url": URL, "api_key": "sk-test", "health": {"drain_settle_secs": 3}})
    ]


def test_a_gateway_that_refuses_the_settle_time_fails_before_the_delete_naming_the_variable():
    gateway = Gateway([entry()], status={"PATCH": 422})
    with pytest.raises(RouterWorkerError) as failure:
        run(gateway, "leave", drain_settle_s=0)
    assert "PATCH /workers/w1 (http://10.0.0.5:8000) answered 422" in failure.value.message
    assert "install the pinned router_version" in failure.value.message
    assert gateway.writes() == [("PATCH", "/workers/w1", SETTLE_0)]  # still routed to: no DELETE was sent


@pytest.mark.parametrize(
    "action, listing, changed",
    [("leave", [entry()], True), ("leave", [], False), ("join", [], True), ("join", [entry()], False)],
)
def test_check_mode_reads_the_list_and_says_what_would_change(action, listing, changed):
    gateway = Gateway(listing)
    result = run(gateway, action, check_mode=True)
    assert result["changed"] is changed and gateway.writes() == []


def test_a_worker_that_never_turns_healthy_fails_at_the_timeout_naming_the_setting():
    gateway = Gateway([], [entry(healthy=False)])
    with pytest.raises(RouterWorkerError) as failure:
        run(gateway, "join", timeout_s=3, poll_s=1)
    assert "after 3 s (router_worker_timeout_s)" in failure.value.message
    assert "w1 (status ready, healthy False)" in failure.value.message
    assert failure.value.entries == [entry(healthy=False)]


def test_a_refused_delete_fails_with_the_status():
    gateway = Gateway([entry()], status={"DELETE": 401})
    with pytest.raises(RouterWorkerError, match="DELETE /workers/w1 .* answered 401"):
        run(gateway, "leave")


def test_a_list_that_is_not_a_worker_list_fails():
    def gateway(method, path, body):
        return 401, None

    with pytest.raises(RouterWorkerError, match="GET /workers answered 401"):
        move(gateway, URL, "leave")


def test_has_left():
    assert has_left([], "gone") and has_left([], "draining")
    assert has_left([entry("draining")], "draining") and not has_left([entry("draining")], "gone")
    assert not has_left([entry()], "draining")
