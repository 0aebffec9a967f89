"""engine_health_wait run as Ansible runs it (args file), against a real local HTTP server and stand-in
systemctl/journalctl executables that print what systemd prints for a crashed unit."""

import http.server
import socket
import threading

import pytest

pytestmark = pytest.mark.unit

MODULE = "plugins/modules/engine_health_wait.py"
KEY = "sk-fleetserve-test-4711"


@pytest.fixture()
def fake_systemd(tmp_path):
    """systemctl shows the unit state in state.txt; journalctl prints journal.txt."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "state.txt").write_text("ActiveState=active\nSubState=running\nNRestarts=0\n")
    (tmp_path / "journal.txt").write_text("")
    for name, source in (("systemctl", "state.txt"), ("journalctl", "journal.txt")):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/{name}.calls\ncat {tmp_path}/{source}\n')
        tool.chmod(0o755)
    return tmp_path


@pytest.fixture()
def run_module(ansible_module, fake_systemd):
    def _run(**args):
        return ansible_module(MODULE, bin_dir=fake_systemd / "bin", raw=True, **args)

    return _run


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/health"


def test_healthy_engine_returns_at_once(run_module, health_server, fake_systemd):
    result = run_module(service="sglang.service", url=f"{health_server}/health", timeout=10, interval=0.2)[1]
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["status"] == 200
    assert result["attempts"] == 1
    assert (fake_systemd / "systemctl.calls").read_text().splitlines() == [
        "show sglang.service -p ActiveState,SubState,NRestarts,Result,ExecMainCode,ExecMainStatus"
    ]


def test_crashed_engine_fails_with_its_exit_and_a_redacted_journal(run_module, fake_systemd):
    (fake_systemd / "state.txt").write_text(
        "ActiveState=activating\nSubState=auto-restart\nNRestarts=0\nResult=exit-code\nExecMainCode=1\nExecMainStatus=1\n"
    )
    (fake_systemd / "journal.txt").write_text(
        f"server_args=ServerArgs(model_path='/srv/models/m', api_key='{KEY}')\n\n"
        "RuntimeError: simulated crash during start-up (FLEETSERVE_SIM_FAILURE=crash)\n"
    )
    raw, result = run_module(service="sglang.service", url=closed_port_url(), timeout=600, interval=1, redact=[KEY])
    assert result["failed"] is True
    assert result["reason"] == "exited"
    assert result["msg"].startswith("sglang.service exited (exit status 1) 0 s into the wait, before http://127.0.0.1:")
    assert "systemd restarts it (Restart=always), so waiting longer would not help" in result["msg"]
    assert result["msg"].endswith("RuntimeError: simulated crash during start-up (FLEETSERVE_SIM_FAILURE=crash)")
    assert result["journal"][0] == "server_args=ServerArgs(model_path='/srv/models/m', api_key='********')"
    assert result["elapsed_s"] < 10, "failed at the first exit, not at the timeout"
    assert KEY not in raw
    assert (fake_systemd / "journalctl.calls").read_text().strip() == "-u sglang.service -n 20 --no-pager -o cat"


def test_check_mode_is_not_supported_so_ansible_skips_it(run_module):
    result = run_module(service="sglang.service", url=closed_port_url(), _ansible_check_mode=True)[1]
    assert result["skipped"] is True


@pytest.mark.parametrize("engine, meaning", [("sglang", "503, warming up"), ("vllm", "503, failing")])
def test_a_timeout_says_what_the_last_answer_meant_for_the_engine(run_module, fake_systemd, engine, meaning):
    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        result = run_module(service=f"{engine}.service", url=url, engine=engine, timeout=0.5, interval=0.2)[1]
    finally:
        server.shutdown()
    assert result["failed"] is True and result["reason"] == "timeout", result
    assert f"(last answer: {meaning})" in result["msg"]
