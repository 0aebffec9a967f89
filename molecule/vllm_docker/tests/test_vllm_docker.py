"""Verify vllm_docker against engine-sim in a nested dockerd: service, container, model id, auth, leaks."""

import json

import pytest

KEY = "fs-engine-vllm-key-9c41e7"
BASE = "http://127.0.0.1:8000"


def curl(host, path, key=False, data=None):
    auth = f"-H 'Authorization: Bearer {KEY}'" if key else ""
    body = f"-H 'Content-Type: application/json' -d '{json.dumps(data)}'" if data else ""
    out = host.check_output(f"curl -sS -o /tmp/fs-body -w '%{{http_code}}' {auth} {body} {BASE}{path}")
    return int(out), host.file("/tmp/fs-body").content_string


def inspect(host):
    return json.loads(host.check_output("docker inspect vllm"))[0]


def test_service_active_and_enabled(host):
    svc = host.service("vllm")
    assert svc.is_running
    assert svc.is_enabled


def test_container_runs_with_explicit_entrypoint_and_model(host):
    """The image's own ENTRYPOINT (vllm serve) is overridden: the key wrapper (/bin/sh) execs python3."""
    info = inspect(host)
    assert info["Path"] == "/bin/sh"
    assert info["Args"][2:4] == ["fleetserve-vllm-key", "python3"]
    assert info["Args"][4:8] == ["-m", "vllm.entrypoints.openai.api_server", "--model", "/srv/models/MiniMax-M1-40k"]


def test_container_runs_the_planners_argv(host):
    """The plan comes from the planner (converge.yml): M1 on the recorded 4xH200 host is TP4, and its argv ends with
    the plan's --host/--port (no extra flags in this scenario)."""
    args = inspect(host)["Args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert args[args.index("--served-model-name") + 1] == "MiniMax-M1"
    assert args[-4:] == ["--host", "0.0.0.0", "--port", "8000"]


def test_container_options(host):
    info = inspect(host)
    hc = info["HostConfig"]
    assert hc["Privileged"] is False
    assert hc["IpcMode"] == "host"
    assert hc["NetworkMode"] == "host"
    assert hc["AutoRemove"] is True
    assert {u["Name"]: u["Hard"] for u in hc["Ulimits"]} == {"stack": 67108864}  # memlock blanked: see converge.yml
    assert "/srv/models/MiniMax-M1-40k:/srv/models/MiniMax-M1-40k:ro" in hc["Binds"]


def test_container_env(host):
    env = inspect(host)["Config"]["Env"]
    assert "HF_HUB_OFFLINE=1" in env
    assert "VLLM_USE_V1=0" in env  # 0.9.2 still has the V0 engine that M1 needs


def test_health_answers(host):
    assert curl(host, "/health")[0] == 200


def test_models_lists_the_served_name(host):
    status, body = curl(host, "/v1/models", key=True)
    assert status == 200
    assert json.loads(body)["data"][0]["id"] == "MiniMax-M1"


def test_models_refuses_without_key(host):
    assert curl(host, "/v1/models")[0] == 401


def test_m1_tool_call_parsed(host):
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
        data={"model": "MiniMax-M1", "messages": [{"role": "user", "content": "Weather in SF?"}], "tools": [tool]},
    )
    assert status == 200
    call = json.loads(body)["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"location": "San Francisco"}


@pytest.mark.parametrize(
    "command", ["systemctl cat vllm", "ps -eo args", "docker inspect vllm", "cat /etc/fleetserve/vllm/vllm.env"]
)
def test_key_not_exposed(host, command):
    """Issue 22: the key is in no argv, no unit, no env file and not in `docker inspect` (Config.Env, Args)."""
    assert KEY not in host.check_output(command)


def test_key_file_is_private_and_mounted_read_only(host):
    f = host.file("/etc/fleetserve/vllm/vllm-api-key")
    assert (f.mode, f.user, f.group) == (0o600, "root", "root")
    assert f.content_string == KEY + "\n"
    assert "/etc/fleetserve/vllm/vllm-api-key:/run/fleetserve/vllm-api-key:ro" in inspect(host)["HostConfig"]["Binds"]


def test_the_engine_process_has_the_key(host):
    """Inside the container the wrapper exported it: the engine's own environment (root-only /proc) holds it."""
    environ = host.check_output("docker exec vllm cat /proc/1/environ | tr '\\0' '\\n'")
    assert f"VLLM_API_KEY={KEY}" in environ.splitlines()


def test_env_file_is_private(host):
    f = host.file("/etc/fleetserve/vllm/vllm.env")
    assert f.mode == 0o600
    assert f.user == "root"


def test_systemd_recreates_a_killed_container(host):
    """Supervision: kill the container; the unit re-creates it from the image and it serves again. Runs last."""
    before = inspect(host)["Id"]
    host.run("docker kill vllm")
    out = host.run(
        "for i in $(seq 1 60); do id=$(docker inspect -f '{{.Id}}' vllm 2>/dev/null); "
        f'[ -n "$id" ] && [ "$id" != {before} ] && '
        "[ \"$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health)\" = 200 ] && exit 0; sleep 1; done; exit 1"
    )
    assert out.rc == 0, "vllm was not re-created and healthy within 60 s after docker kill"
