"""Verify sglang_venv against engine-sim: service, readiness, model id, auth, and no key leaks."""

import json

import pytest

KEY = "fs-engine-sglang-key-5be1d0"
BASE = "http://127.0.0.1:8000"


def curl(host, path, key=None, data=None):
    auth = f"-H 'Authorization: Bearer {KEY}'" if key else ""
    body = f"-H 'Content-Type: application/json' -d '{json.dumps(data)}'" if data else ""
    out = host.check_output(f"curl -sS -o /tmp/fs-body -w '%{{http_code}}' {auth} {body} {BASE}{path}")
    return int(out), host.file("/tmp/fs-body").content_string


def test_service_active_and_enabled(host):
    svc = host.service("sglang")
    assert svc.is_running
    assert svc.is_enabled


def test_runs_as_dedicated_user_from_the_venv(host):
    out = host.check_output("ps -o user=,args= -C python")
    line = next(line for line in out.splitlines() if "sglang.launch_server" in line)
    assert line.split()[0] == "sglang"
    assert "/opt/fleetserve/sglang/venv-0.5.23/bin/python -m sglang.launch_server" in line


def test_runs_the_planned_layout(host):
    """The plan comes from the planner (converge.yml): TP2 with EP2, and the plan's --host/--port."""
    out = host.check_output("ps -o args= -C python")
    line = next(line for line in out.splitlines() if "sglang.launch_server" in line)
    assert " --tp-size 2 --ep-size 2 " in line
    assert " --host 0.0.0.0 --port 8000" in line


def test_current_link_names_the_release(host):
    link = host.file("/opt/fleetserve/sglang/venv")
    assert link.is_symlink and link.linked_to == "/opt/fleetserve/sglang/venv-0.5.23"


def test_pinned_release_installed(host):
    out = host.check_output(
        "/opt/fleetserve/sglang/venv-0.5.23/bin/python -c \"import importlib.metadata as m; print(m.version('sglang'))\""
    )
    assert out.strip() == "0.5.23"


def test_health_answers(host):
    assert curl(host, "/health")[0] == 200


def test_models_lists_the_served_name(host):
    status, body = curl(host, "/v1/models", key=True)
    assert status == 200
    assert json.loads(body)["data"][0]["id"] == "MiniMax-M2.5"


def test_models_refuses_without_key(host):
    assert curl(host, "/v1/models")[0] == 401


def test_tool_call_parsed(host):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    }
    status, body = curl(
        host,
        "/v1/chat/completions",
        key=True,
        data={"model": "MiniMax-M2.5", "messages": [{"role": "user", "content": "Weather in SF?"}], "tools": [tool]},
    )
    assert status == 200
    message = json.loads(body)["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert message["content"].startswith("<think>")  # minimax-append-think keeps the reasoning in content


@pytest.mark.parametrize("command", ["systemctl cat sglang", "ps -eo args", "cat /etc/fleetserve/sglang/sglang.env"])
def test_key_not_exposed(host, command):
    assert KEY not in host.check_output(command)


def test_secret_config_is_private(host):
    f = host.file("/etc/fleetserve/sglang/sglang-secrets.yaml")
    assert f.mode == 0o600
    assert f.user == "sglang"
    assert KEY in f.content_string


def test_hardening_applied(host):
    assert host.check_output("systemctl show -p NoNewPrivileges --value sglang").strip() == "yes"


def test_systemd_restarts_a_crashed_engine(host):
    """Supervision: kill the engine; systemd starts a new one that becomes healthy again. Runs last."""
    before = host.check_output("systemctl show -p MainPID --value sglang").strip()
    host.run(f"kill -9 {before}")
    out = host.run(
        "for i in $(seq 1 60); do pid=$(systemctl show -p MainPID --value sglang); "
        f'[ "$pid" != 0 ] && [ "$pid" != {before} ] && '
        "[ \"$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health)\" = 200 ] && exit 0; sleep 1; done; exit 1"
    )
    assert out.rc == 0, "sglang did not come back healthy within 60 s after a crash"
