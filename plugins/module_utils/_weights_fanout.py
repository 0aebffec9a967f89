# Copyright: (c) 2026, fleetserve contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fan-out as one task: who copies from whom, and how a host waits for its source. Private.

Every receiver runs at once (one Ansible task); each waits until the hosts it depends on announce a
verified copy through their peer server's ``ready`` module, then copies. The schedule only ever makes a
host wait for hosts *earlier* in the play's order, so a play with fewer forks than hosts cannot deadlock:
the earliest host still running never waits for one that has not started.
"""

from __future__ import annotations

import json

from ansible_collections.fleetserve.minimax.plugins.module_utils._weights import WeightsError, fanout_rounds

READY_MODULE = "ready"
# rsync exit codes met while polling a peer's ready file.
_RSYNC_MISSING = frozenset([23])  # the file is not there (yet): partial transfer
_RSYNC_UNREACHABLE = frozenset([10, 12, 35])  # socket error, stream ended, timeout: daemon not (yet) up


class FanoutError(WeightsError):
    """A fan-out wait that cannot succeed; the message names the host to look at and the fix."""


def fanout_plan(holders, hosts, degree=1, announcing=()):
    """The whole fan-out for one task.

    ``holders`` hold a verified copy before the task (the seed first), or, for those also in
    ``announcing`` (the seed downloading in the background), will announce one; ``hosts`` are the play's
    hosts in play order. Returns ``sources`` (receiver -> host it copies from), ``after`` (receiver ->
    hosts that must announce a verified copy before its copy completes: its source when that is a
    receiver or an announcing holder, and the hosts its source fed the round before, so a source feeds
    ``degree`` hosts at a time as in the round schedule) and ``servers`` (hosts that must run a peer
    server, in play order).
    """
    holders = list(holders)
    stray = [h for h in announcing if h not in holders]
    if stray:
        raise ValueError("only hosts that hold or fetch a copy themselves can announce it beforehand: %s" % stray)
    rounds = fanout_rounds(holders, list(hosts), degree)
    sources, after, fed_last_round = {}, {}, {}
    for rnd in rounds:
        fed = {}
        for receiver, source in rnd.items():
            sources[receiver] = source
            deps = [] if source in holders and source not in announcing else [source]
            deps += [h for h in fed_last_round.get(source, []) if h not in deps]
            after[receiver] = deps
            fed.setdefault(source, []).append(receiver)
        fed_last_round = fed
    needed = set(sources.values()) | set(h for deps in after.values() for h in deps)
    servers = []
    for h in list(hosts) + holders:
        if h in needed and h not in servers:
            servers.append(h)
    return {"sources": sources, "after": after, "servers": servers}


def ready_document(run_id, ok, message=""):
    """What a host announces through its ready module once its copy is published (or has failed)."""
    return {"run": run_id, "state": "ready" if ok else "failed", "message": message}


def read_ready(text, run_id, host):
    """True when ``text`` announces a verified copy for this run; False for a file left by another run."""
    try:
        doc = json.loads(text)
    except ValueError:
        return False  # caught mid-write; the next poll reads it whole
    if not isinstance(doc, dict) or doc.get("run") != run_id:
        return False
    if doc.get("state") != "ready":
        raise FanoutError(
            "%s, which this host copies from or waits for, failed: %s; fix %s and run the play again"
            % (host, doc.get("message") or "no reason given", host)
        )
    return True


def poll_outcome(rc, err, host, url):
    """Map one rsync poll of a ready file to 'fetched', 'missing' or 'unreachable'; anything else fails."""
    if rc == 0:
        return "fetched"
    if rc in _RSYNC_MISSING:
        return "missing"
    if rc in _RSYNC_UNREACHABLE:
        return "unreachable"
    raise FanoutError(
        "the peer server of %s refused %s (rsync rc %d: %s): every host must run the same fan-out; "
        "run the whole play again rather than a part of it" % (host, url, rc, _tail(err))
    )


def poll_announcement(fetch, host, url, run_id):
    """One poll of ``host``'s ready file: ``(state, rc, err)``, state 'ready', 'waiting' or 'unreachable'.

    A failure announced for this run, or a peer server that refuses the poll, raises FanoutError.
    """
    rc, text, err = fetch(url)
    outcome = poll_outcome(rc, err, host, url)
    if outcome == "unreachable":
        return outcome, rc, err
    return ("ready" if outcome == "fetched" and read_ready(text, run_id, host) else "waiting"), rc, err


def wait_for_hosts(waits, run_id, fetch, clock, sleep, timeout, unreachable_grace=120.0, interval=0.5, max_delay=5.0):
    """Block until every ``(host, url)`` in ``waits`` announces a verified copy for ``run_id``.

    ``fetch(url) -> (rc, text, err)`` reads a ready file; ``clock``/``sleep`` are injectable for tests.
    Fails with a FanoutError naming the host when a host announces a failure, stays unreachable for
    ``unreachable_grace`` seconds, or does not announce within ``timeout`` seconds.
    """
    start = clock()
    pending = list(waits)
    unreachable_since = {}
    delay = interval
    while pending:
        for host, url in list(pending):
            state, rc, err = poll_announcement(fetch, host, url, run_id)
            now = clock()
            if state == "unreachable":
                since = unreachable_since.setdefault(host, now)
                if now - since >= unreachable_grace:
                    raise FanoutError(
                        "cannot reach the peer server of %s at %s for %d s (rsync rc %d: %s): check that its "
                        "peer server is running and that weights_fanout_port is open between the hosts"
                        % (host, url, now - since, rc, _tail(err))
                    )
                continue
            unreachable_since.pop(host, None)
            if state == "ready":
                pending.remove((host, url))
        if not pending:
            break
        waited = clock() - start
        if waited >= timeout:
            raise FanoutError(
                "waited %d s for %s to announce a verified copy, in vain: look at %s's result in this play, "
                "or raise weights_fanout_timeout if its copy is only slow"
                % (waited, " and ".join(h for h, _u in pending), pending[0][0])
            )
        sleep(min(delay, max(timeout - waited, 0)))
        delay = min(delay * 1.5, max_delay)
    return clock() - start


def stream_copy(pending, source_state, pull, arrived, clock, sleep, timeout, interval=0.5):
    """Copy files while the source is still filling its staging area, each as soon as it lands there.

    A source that downloads (or copies) writes each file under its final name in one rename, so a file
    found there is whole; whether it is *right* is decided here by hashing it against the hub's manifest.
    ``source_state() -> 'waiting' | 'ready' | 'unreachable'`` (a failed source raises FanoutError);
    ``pull(paths)`` makes one pass over ``paths`` (those the source does not hold yet are skipped);
    ``arrived(paths) -> (verified, rejected)`` checks which of ``paths`` are now held and right here.
    A rejected file is not pulled again while streaming: the copy after the source's announcement takes
    it, with whatever the source replaced it with. Returns the paths still missing when the source
    announced, stopped answering, or ``timeout`` passed; the caller's full copy and verification follow.
    """
    pending, rejected = set(pending), set()
    start = clock()
    while pending - rejected and clock() - start < timeout:
        if source_state() != "waiting":
            break
        want = sorted(pending - rejected)
        pull(want)
        verified, bad = arrived(want)
        pending -= set(verified)
        rejected |= set(bad)
        if not verified:
            sleep(interval)
    return pending


def _tail(err):
    return " ".join((err or "").split())[-300:] or "no message"
