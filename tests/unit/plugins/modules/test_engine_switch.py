"""engine_switch run as Ansible runs it (args file): staged files into place, restart, health, record, against
a real local HTTP server and a stand-in systemctl/journalctl that log their calls."""

import json
import os
import stat

import pytest

pytestmark = pytest.mark.unit

MODULE = "plugins/modules/engine_switch.py"
KEY = "sk-fleetserve-switch-4711"


@pytest.fixture()
def host(tmp_path):
    """A host in tmp_path: systemctl shows state.txt and says is-enabled from enabled.txt; calls are logged."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "state.txt").write_text("ActiveState=active\nSubState=running\nNRestarts=0\n")
    (tmp_path / "enabled.txt").write_text("enabled\n")
    (tmp_path / "journal.txt").write_text("")
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/systemctl.calls\n'
        f'case "$1" in show) cat {tmp_path}/state.txt;; is-enabled) cat {tmp_path}/enabled.txt;; esac\n'
    )
    (bin_dir / "journalctl").write_text(f"#!/bin/sh\ncat {tmp_path}/journal.txt\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    for sub in ("staged", "live", "records", "venv-2"):
        (tmp_path / sub).mkdir()
    (tmp_path / "venv-2" / "python").write_text("")
    (tmp_path / "staged" / "engine.env").write_text('A="2"\n')
    (tmp_path / "staged" / "config.yaml").write_text(f"api-key: {KEY}\n")
    (tmp_path / "staged" / "config.yaml").chmod(0o600)
    (tmp_path / "staged" / "engine.service").write_text("[Service]\nExecStart=/bin/true\n")
    (tmp_path / "live" / "engine.env").write_text('A="1"\n')
    (tmp_path / "live" / "engine.service").write_text("[Service]\nExecStart=/bin/true\n")
    os.symlink(tmp_path / "venv-1", tmp_path / "venv")
    return tmp_path


def calls(host):
    path = host / "systemctl.calls"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line for line in lines if not line.startswith(("show", "is-enabled"))]


@pytest.fixture()
def run_module(ansible_module, host):
    def _run(check=False, **args):
        return ansible_module(MODULE, check_mode=check, bin_dir=host / "bin", raw=True, **args)

    return _run


def switch_args(host, health_url, **extra):
    return {
        "service": "engine.service",
        "files": [
            {"src": str(host / "staged" / name), "dest": str(host / "live" / name)}
            for name in ("engine.env", "config.yaml", "engine.service")
        ],
        "link": {"src": str(host / "venv-2"), "dest": str(host / "venv")},
        "require": [str(host / "venv-2" / "python")],
        "health_url": f"{health_url}/health",
        "engine": "sglang",
        "health_timeout": 10,
        "health_interval": 0.1,
        "redact": [KEY],
        "record_path": str(host / "records" / "current.json"),
        "record": {"engine": "sglang", "version": "2"},
        **extra,
    }


def test_switch_installs_restarts_waits_and_records_then_changes_nothing(run_module, host, health_server):
    out, result = run_module(**switch_args(host, health_server))
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert sorted(result["installed"]) == sorted(str(host / "live" / n) for n in ("engine.env", "config.yaml"))
    assert result["linked"] is True and os.readlink(host / "venv") == str(host / "venv-2")
    assert (host / "live" / "engine.env").read_text() == 'A="2"\n'
    assert stat.S_IMODE((host / "live" / "config.yaml").stat().st_mode) == 0o600
    assert (host / "staged" / "engine.env").exists(), "the staged file stays for the next stage step"
    assert calls(host) == ["daemon-reload", "restart engine.service"]
    assert result["service_action"] == "restart" and result["health"]["status"] == 200
    assert json.loads((host / "records" / "current.json").read_text()) == {"engine": "sglang", "version": "2"}
    assert KEY not in out, "no staged secret in the result"
    # Again: everything is in place, nothing restarts, the record stays.
    (host / "systemctl.calls").unlink()
    _out, again = run_module(**switch_args(host, health_server))
    assert again["changed"] is False, again
    assert calls(host) == [] and again["service_action"] is None and again["record_changed"] is False


def test_a_stopped_disabled_unit_is_enabled_and_started(run_module, host, health_server):
    (host / "state.txt").write_text("ActiveState=inactive\nSubState=dead\nNRestarts=0\n")
    (host / "enabled.txt").write_text("disabled\n")
    args = switch_args(host, health_server)
    args["files"] = [f for f in args["files"] if f["dest"].endswith("engine.service")]  # unchanged file

    result = run_module(**args)[1]
    # The fake unit stays "inactive", but the health route answers first.
    assert result.get("failed") is not True, result
    assert calls(host) == ["daemon-reload", "enable engine.service", "start engine.service"]


def test_a_release_that_was_not_staged_is_refused_before_anything_changes(run_module, host, health_server):
    args = switch_args(host, health_server, require=[str(host / "venv-3" / "python")], require_fix="Run stage.")
    result = run_module(**args)[1]
    assert result["failed"] is True
    assert result["msg"] == f"{host / 'venv-3' / 'python'} not found: the release was not staged. Run stage."
    assert (host / "live" / "engine.env").read_text() == 'A="1"\n' and calls(host) == []
    assert not (host / "records" / "current.json").exists()


def test_check_mode_reports_the_switch_and_changes_nothing(run_module, host, health_server):
    out, result = run_module(check=True, diff=True, **switch_args(host, health_server))
    assert result["changed"] is True and result["service_action"] == "restart"
    assert f"install {host / 'live' / 'config.yaml'}" in result["diff"]["after"]
    assert KEY not in out
    assert (host / "live" / "engine.env").read_text() == 'A="1"\n' and calls(host) == []
    assert os.readlink(host / "venv") == str(host / "venv-1")


def test_an_engine_that_exits_on_start_fails_with_its_redacted_journal_and_no_record(run_module, host):
    (host / "state.txt").write_text(
        "ActiveState=activating\nSubState=auto-restart\nNRestarts=1\nExecMainCode=1\nExecMainStatus=1\n"
    )
    (host / "journal.txt").write_text(f"args: --api-key {KEY}\nRuntimeError: boom\n")
    args = switch_args(host, "http://127.0.0.1:9/health")
    out, result = run_module(**args)
    assert result["failed"] is True and result["reason"] == "exited", result
    assert "engine.service exited (exit status 1)" in result["msg"] and "RuntimeError: boom" in result["msg"]
    assert KEY not in out and "********" in result["msg"]
    assert not (host / "records" / "current.json").exists(), "no record of a release that did not come up"


def test_a_secret_file_no_longer_in_use_is_removed(run_module, host, health_server):
    (host / "live" / "config.yaml").write_text("api-key: old\n")
    args = switch_args(host, health_server, remove=[str(host / "live" / "config.yaml")])
    args["files"] = [f for f in args["files"] if not f["dest"].endswith("config.yaml")]
    result = run_module(**args)[1]
    assert result["removed"] == [str(host / "live" / "config.yaml")]
    assert not (host / "live" / "config.yaml").exists()
