"""The engine health wait on a fake clock: ready, first exit, stopped, timeout, redaction."""

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils._engine_health import (
    EngineNotReady,
    HealthWait,
    describe_end,
    last_lines,
    parse_unit_show,
    redact,
    unit_failure,
)
from fake_clock import FakeClock

pytestmark = pytest.mark.unit

URL = "http://127.0.0.1:8000/health"
RUNNING = {"ActiveState": "active", "SubState": "running", "NRestarts": "0", "Result": "success",
           "ExecMainCode": "0", "ExecMainStatus": "0"}
# What systemd shows in RestartSec after the main process exited 1 (read on a lab host).
EXITED_1 = {"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": "0", "Result": "exit-code",
            "ExecMainCode": "1", "ExecMainStatus": "1"}


class FakeHost:
    """Health answers and unit states per poll, and a clock that only moves when the wait sleeps."""

    def __init__(self, answers, states):
        self.answers, self.states, self.clock = list(answers), list(states), FakeClock(100.0)

    def probe(self, url):
        assert url == URL
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def show(self):
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def wait(host, timeout=30.0, interval=5.0):
    clock = host.clock
    return HealthWait("sglang.service", URL, timeout, interval, 200, host.probe, host.show, clock, clock.sleep).run()


def test_parse_unit_show_reads_key_value_lines():
    text = "ActiveState=activating\nSubState=auto-restart\nNRestarts=3\nExecMainStatus=1\n\n"
    assert parse_unit_show(text) == {"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": "3",
                                     "ExecMainStatus": "1"}


def test_ready_after_warm_up_returns_attempts_and_time():
    host = FakeHost([None, 503, 503, 200], [RUNNING])
    result = wait(host)
    assert result["status"] == 200
    assert result["attempts"] == 4
    assert result["elapsed_s"] == 15.0
    assert host.clock.slept == [5.0, 5.0, 5.0]


def test_first_exit_fails_at_once_with_the_exit_status():
    host = FakeHost([None], [RUNNING, RUNNING, EXITED_1])
    with pytest.raises(EngineNotReady) as failed:
        wait(host, timeout=1800)
    assert failed.value.reason == "exited"
    assert failed.value.message == (
        "sglang.service exited (exit status 1) 5 s into the wait, before http://127.0.0.1:8000/health answered 200; "
        "systemd restarts it (Restart=always), so waiting longer would not help"
    )
    assert host.clock.now == 105.0, "one poll interval, not the 1800 s timeout"


def test_a_restart_between_polls_counts_as_an_exit():
    restarted = dict(RUNNING, NRestarts="1", ExecMainCode="2", ExecMainStatus="9")
    host = FakeHost([None], [RUNNING, restarted])
    with pytest.raises(EngineNotReady) as failed:
        wait(host)
    assert failed.value.reason == "exited"
    assert failed.value.message.startswith("sglang.service exited (killed by signal 9) 0 s into the wait")


def test_restarts_before_the_wait_do_not_count():
    earlier = dict(RUNNING, NRestarts="4")
    host = FakeHost([None, 200], [earlier])
    assert wait(host)["attempts"] == 2


def test_failed_unit_means_systemd_gave_up():
    failed_state = dict(EXITED_1, ActiveState="failed", SubState="failed", ExecMainCode="3", ExecMainStatus="6")
    assert unit_failure("vllm.service", failed_state, 0) == (
        "exited", "vllm.service has failed (killed by signal 6, core dumped)", "; systemd gave up restarting it"
    )


def test_stopped_unit_is_named():
    stopped = dict(RUNNING, ActiveState="inactive", SubState="dead")
    host = FakeHost([None], [RUNNING, stopped])
    with pytest.raises(EngineNotReady) as failed:
        wait(host)
    assert failed.value.reason == "stopped"
    assert failed.value.message == (
        "sglang.service is inactive (dead) 0 s into the wait, before http://127.0.0.1:8000/health answered 200: "
        "something stopped it"
    )


def test_timeout_while_running_names_the_fix():
    host = FakeHost([503], [RUNNING])
    with pytest.raises(EngineNotReady) as failed:
        wait(host, timeout=12, interval=5)
    assert failed.value.reason == "timeout"
    assert failed.value.message == (
        "sglang.service did not answer http://127.0.0.1:8000/health with 200 within 12 s (last answer: 503) while "
        "sglang.service kept running: the engine may need longer to load (raise the role's start timeout), or read "
        "`journalctl -u sglang.service`"
    )
    assert host.clock.slept == [5, 5, 2], "the last sleep ends at the deadline"


def test_describe_end_without_a_status():
    assert describe_end({"Result": "timeout"}) == "result timeout"
    assert describe_end({}) == "no exit status recorded"


def test_redact_replaces_every_secret_longest_first():
    text = "server_args=ServerArgs(api_key='sk-lab-123', model='m') key sk-lab-123 sk-lab"
    assert redact(text, ["sk-lab", "sk-lab-123", ""]) == (
        "server_args=ServerArgs(api_key='********', model='m') key ******** ********"
    )


def test_last_lines_skips_blank_lines():
    assert last_lines("a\n\nb\nc\n", 2) == ["b", "c"]
    assert last_lines("a\n", 0) == []
