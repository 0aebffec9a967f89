# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for a freshly (re)started engine unit: health route and systemd state together.

An engine unit runs with Restart=always, so an engine that crashes on start is restarted every
RestartSec and never turns "failed": a plain health poll only notices at its timeout, which for a
large model is half an hour. systemd already knows at the first exit (SubState auto-restart, NRestarts
grows), so the wait stops there, with the engine's last journal lines.
"""

from __future__ import annotations

import time

from ansible_collections.fleetserve.minimax.plugins.module_utils._health import health_state, probe_status

# What `systemctl show` is asked for; every one exists since systemd 235 (NRestarts).
UNIT_PROPERTIES = ("ActiveState", "SubState", "NRestarts", "Result", "ExecMainCode", "ExecMainStatus")

# si_code of the main process's end (waitid(2)): how ExecMainStatus reads.
_EXITED, _KILLED, _DUMPED = "1", "2", "3"

REDACTED = "********"

# Journal lines quoted in a failure message (all of them are returned beside it).
MESSAGE_JOURNAL_LINES = 4


class EngineNotReady(Exception):
    """The engine will not come up (reason "exited", "stopped") or did not in time ("timeout")."""

    def __init__(self, reason, message, state=None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.state = state or {}


def parse_unit_show(text):
    """`systemctl show -p A,B` output ("A=x" lines) as a dict."""
    state = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            state[key.strip()] = value.strip()
    return state


def restarts(state):
    try:
        return int(state.get("NRestarts") or 0)
    except ValueError:
        return 0


def describe_end(state):
    """How the unit's main process last ended, in words ("exit status 1", "killed by signal 9")."""
    code, status = state.get("ExecMainCode", ""), state.get("ExecMainStatus", "")
    if code == _EXITED:
        return "exit status %s" % status
    if code in (_KILLED, _DUMPED) and status:
        return "killed by signal %s%s" % (status, ", core dumped" if code == _DUMPED else "")
    result = state.get("Result", "")
    return "result %s" % result if result and result != "success" else "no exit status recorded"


def unit_failure(unit, state, restarts_at_start):
    """(reason, what happened, why it is final) while the unit will not answer, or None while it may."""
    active, sub = state.get("ActiveState", ""), state.get("SubState", "")
    if active == "failed":
        return "exited", "%s has failed (%s)" % (unit, describe_end(state)), "; systemd gave up restarting it"
    if sub == "auto-restart" or restarts(state) > restarts_at_start:
        return (
            "exited",
            "%s exited (%s)" % (unit, describe_end(state)),
            "; systemd restarts it (Restart=always), so waiting longer would not help",
        )
    if active in ("inactive", "deactivating"):
        return "stopped", "%s is %s (%s)" % (unit, active, sub or "dead"), ": something stopped it"
    return None


def redact(text, secrets):
    """The text with every secret (API key, token) replaced: engines print their arguments at start."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def last_lines(text, count):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-count:] if count > 0 else []


class HealthWait:
    """Poll the health URL and the unit until 200, an exit, or the deadline.

    probe(url) -> HTTP status or None (no answer); show() -> `systemctl show` dict; clock() and sleep(s)
    are injected so the loop runs on a fake clock in tests.
    """

    def __init__(self, unit, url, timeout, interval, expect_status, probe, show, clock, sleep, describe=None):
        self.unit, self.url = unit, url
        self.timeout, self.interval, self.expect_status = timeout, interval, expect_status
        self.probe, self.show, self.clock, self.sleep = probe, show, clock, sleep
        # describe(status) -> what an answer means (the engine's health_state), for the timeout message
        self.describe = describe

    def run(self):
        start = self.clock()
        state = self.show()
        restarts_at_start = restarts(state)
        attempts, status = 0, None
        while True:
            attempts += 1
            status = self.probe(self.url)
            elapsed = self.clock() - start
            if status == self.expect_status:
                return {"elapsed_s": round(elapsed, 2), "attempts": attempts, "status": status, "unit": state}
            state = self.show()
            failure = unit_failure(self.unit, state, restarts_at_start)
            if failure:
                reason, what, why = failure
                raise EngineNotReady(
                    reason,
                    "%s %.0f s into the wait, before %s answered %s%s"
                    % (what, elapsed, self.url, self.expect_status, why),
                    state,
                )
            if elapsed >= self.timeout:
                raise EngineNotReady(
                    "timeout",
                    "%s did not answer %s with %s within %.0f s (last answer: %s) while %s kept running: the engine "
                    "may need longer to load (raise the role's start timeout), or read `journalctl -u %s`"
                    % (
                        self.unit,
                        self.url,
                        self.expect_status,
                        self.timeout,
                        self.last_answer(status),
                        self.unit,
                        self.unit,
                    ),
                    state,
                )
            self.sleep(min(self.interval, max(self.timeout - elapsed, 0)))

    def last_answer(self, status):
        if status is None:
            return "no connection"
        return "%s, %s" % (status, self.describe(status).replace("_", " ")) if self.describe else str(status)


def engine_wait(unit, url, timeout, interval, show, engine=None, expect_status=200):
    """The wait the engine modules run: probe_status on the real clock, a timeout's last answer read through
    the engine's health_state when the engine is named."""
    describe = (lambda status: health_state(engine, status)) if engine else None
    return HealthWait(
        unit, url, timeout, interval, expect_status, probe_status, show, time.monotonic, time.sleep, describe
    )


def journal_tail(run_command, journalctl, unit, count, secrets):
    """The unit's last `count` journal lines, secrets redacted; [] without journalctl or for count 0.
    run_command(argv) -> (rc, out, err), as AnsibleModule.run_command."""
    if not journalctl or count <= 0:
        return []
    out = run_command([journalctl, "-u", unit, "-n", str(count), "--no-pager", "-o", "cat"])[1]
    return last_lines(redact(out, secrets), count)


def not_ready_message(exc, lines):
    """The failure message: why the engine is not up, then its last few journal lines."""
    tail = lines[-MESSAGE_JOURNAL_LINES:]
    return exc.message + (". Last journal lines: " + " | ".join(tail) if tail else "")
