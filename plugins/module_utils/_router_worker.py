# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving one worker out of an SGLang Model Gateway, or back in, through the gateway's worker API.

GET /workers lists {"workers": [{"id", "url", "status", "is_healthy", ...}]}; DELETE /workers/{id} makes the
gateway send the worker no new request (status "draining") and drop the entry after its settle time (the
gateway's --drain-settle-secs, 5 s in smg 1.13.0, or the worker's own health.drain_settle_secs); POST /workers
{"url", "api_key", "health"} adds a worker, which the gateway lists healthy once its own health check passes;
PATCH /workers/{id} {"health": {...}} changes one worker's health settings. A worker may be listed more than
once while an old entry drains.

The settle time is the gateway's fixed wait, not a drain: it does not watch the worker's in-flight requests,
and requests already sent to the worker finish after the entry is dropped (measured on smg 1.13.0). The
rollout waits for the engine's own in-flight gauge, so it asks for a settle time of 0 (`drain_settle_s`): the
old entry is gone at once and the rejoin need not wait for it.

leave: with drain_settle_s, PATCH it onto every entry of the worker not draining yet; DELETE those entries,
  then wait until the worker is gone, or only draining (until="draining": the caller waits for the engine's
  in-flight requests itself, as the rollout does).
join: wait until no draining entry of the worker is left (rejoining beside one, the old entry would pass for
  the new worker and then vanish), POST (with drain_settle_s, as the worker's own settle time) unless the
  worker is listed already, then wait until it is healthy.
In check mode only the list is read; the result says what would change.

The HTTP calls are injected (`request(method, path, body)` -> (status, parsed JSON or None)), so this file
needs no network to test; the module passes one built on ansible.module_utils.urls.
"""

from __future__ import annotations

import time

ACTIONS = ("join", "leave")
LEAVE_UNTIL = ("gone", "draining")
DRAINING = "draining"


class RouterWorkerError(Exception):
    """The gateway refused a call, or the worker did not reach the wanted state in time."""

    def __init__(self, message, entries=None):
        super().__init__(message)
        self.message = message
        self.entries = entries or []


def entries_of(listing, worker_url):
    """The entries of `worker_url` in a GET /workers answer."""
    workers = (listing or {}).get("workers") or []
    return [w for w in workers if isinstance(w, dict) and w.get("url") == worker_url]


def _draining(entry):
    return entry.get("status", "ready") == DRAINING


def has_left(entries, until):
    """True once the worker is gone (until="gone") or every entry left of it drains (until="draining")."""
    return not entries if until == "gone" else all(_draining(e) for e in entries)


def is_healthy(entries):
    return any(e.get("is_healthy") is True for e in entries)


def move(
    request,
    worker_url,
    action,
    until="gone",
    timeout_s=120.0,
    poll_s=0.5,
    api_key="",
    drain_settle_s=None,
    check_mode=False,
    sleep=time.sleep,
    clock=time.monotonic,
):
    """Move `worker_url` out of the gateway (action "leave") or into it ("join"); see the module docstring.

    `drain_settle_s`: the worker's settle time in the gateway (seconds, see above); None leaves the gateway's.
    Returns {"changed", "entries" (the worker's entries at the end), "waited_s"}; raises RouterWorkerError.
    """
    if action not in ACTIONS:
        raise RouterWorkerError("action must be one of %s, got %r" % (", ".join(ACTIONS), action))
    if until not in LEAVE_UNTIL:
        raise RouterWorkerError("until must be one of %s, got %r" % (", ".join(LEAVE_UNTIL), until))
    started = clock()

    def listed():
        status, body = request("GET", "/workers", None)
        if status != 200 or not isinstance(body, dict):
            raise RouterWorkerError("GET /workers answered %s, not a worker list" % status)
        return entries_of(body, worker_url)

    def wait_for(done, what):
        deadline = started + timeout_s
        entries = listed()
        while not done(entries):
            if clock() >= deadline:
                raise RouterWorkerError(
                    "the router still lists %s as %s after %.0f s (router_worker_timeout_s): %s"
                    % (worker_url, what, timeout_s, _describe(entries)),
                    entries,
                )
            sleep(poll_s)
            entries = listed()
        return entries

    entries = listed()
    if action == "leave":
        to_remove = [e for e in entries if not _draining(e)]
        if check_mode or (not to_remove and has_left(entries, until)):
            return {"changed": bool(to_remove), "entries": entries, "waited_s": 0.0}
        for entry in to_remove:
            if drain_settle_s is not None:
                status, _body = request("PATCH", "/workers/%s" % entry.get("id"), _settle(drain_settle_s))
                if status not in (200, 202, 204):
                    raise RouterWorkerError(
                        "PATCH /workers/%s (%s) answered %s: this gateway does not take a worker's own settle"
                        " time (smg 1.13.0 does): install the pinned router_version"
                        % (entry.get("id"), worker_url, status)
                    )
            status, _body = request("DELETE", "/workers/%s" % entry.get("id"), None)
            if status not in (200, 202, 204):
                raise RouterWorkerError("DELETE /workers/%s (%s) answered %s" % (entry.get("id"), worker_url, status))
        entries = wait_for(lambda e: has_left(e, until), "serving" if until == DRAINING else "still listed")
        return {"changed": bool(to_remove), "entries": entries, "waited_s": round(clock() - started, 2)}

    serving = [e for e in entries if not _draining(e)]
    if check_mode:
        return {"changed": not serving, "entries": entries, "waited_s": 0.0}
    if len(serving) < len(entries):
        entries = wait_for(lambda e: not any(_draining(x) for x in e), "draining")
        serving = entries
    changed = False
    if not serving:
        body = {"url": worker_url}
        if api_key:
            body["api_key"] = api_key
        if drain_settle_s is not None:
            body.update(_settle(drain_settle_s))
        status, _body = request("POST", "/workers", body)
        if status not in (200, 201, 202):
            raise RouterWorkerError("POST /workers (%s) answered %s" % (worker_url, status))
        changed = True
    entries = wait_for(is_healthy, "not healthy")
    return {"changed": changed, "entries": entries, "waited_s": round(clock() - started, 2)}


def _settle(seconds):
    return {"health": {"drain_settle_secs": int(seconds)}}


def _describe(entries):
    if not entries:
        return "not listed"
    return ", ".join(
        "%s (status %s, healthy %s)" % (e.get("id", "?"), e.get("status", "ready"), e.get("is_healthy"))
        for e in entries
    )
