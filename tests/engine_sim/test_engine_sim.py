"""engine-sim behaves like the engines where the roles and the verifier depend on it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_wheel import build  # noqa: E402

pytestmark = pytest.mark.unit

KEY = "sim-test-key"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["location", "days"],
        },
    },
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def sim(tmp_path):
    procs = []

    def start(engine, *argv, **env):
        port = free_port()
        flag = ["--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetserve_engine_sim", engine, *argv, *flag],
            env={**os.environ, "PYTHONPATH": str(HERE), **env},
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc, f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def get(url, key=None, data=None):
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_status(url, want, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(url)[0] == want:
                return time.monotonic()
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered {want}")


def test_vllm_binds_only_when_ready_and_guards_v1(sim, tmp_path):
    _, base = sim(
        "vllm", "--model", str(tmp_path), "--served-model-name", "M1", "--api-key", KEY, FLEETSERVE_SIM_STARTUP_S="1"
    )
    with pytest.raises(urllib.error.URLError):  # no TCP while "loading", like vLLM
        get(base + "/health")
    wait_status(base + "/health", 200)
    assert get(base + "/metrics")[0] == 200  # unauthenticated, like vLLM
    assert get(base + "/v1/models") == (401, '{"error":"Unauthorized"}')  # vLLM's compact JSON
    status, body = get(base + "/v1/models", key=KEY)
    assert status == 200 and json.loads(body)["data"][0]["id"] == "M1"


def test_vllm_api_key_from_environment(sim, tmp_path):
    _, base = sim("vllm", "--model", str(tmp_path), VLLM_API_KEY=KEY, FLEETSERVE_SIM_STARTUP_S="0")
    wait_status(base + "/health", 200)
    assert get(base + "/v1/models")[0] == 401
    assert get(base + "/v1/models", key=KEY)[0] == 200


def test_vllm_ignores_positional_model_with_api_server(sim, tmp_path):
    _, base = sim("vllm", str(tmp_path), FLEETSERVE_SIM_STARTUP_S="0")
    wait_status(base + "/health", 200)
    assert json.loads(get(base + "/v1/models")[1])["data"][0]["id"] == "Qwen/Qwen3-0.6B"


def test_sglang_health_503_until_warm_and_config_key(sim, tmp_path):
    secret = tmp_path / "s.yaml"
    secret.write_text(f"api-key: {KEY}\n")
    _, base = sim(
        "sglang",
        "--model-path",
        str(tmp_path),
        "--config",
        str(secret),
        "--tool-call-parser",
        "minimax-m2",
        "--reasoning-parser",
        "minimax-append-think",
        FLEETSERVE_SIM_STARTUP_S="1",
    )
    wait_status(base + "/health", 503)
    wait_status(base + "/health", 200)
    assert get(base + "/v1/models")[0] == 401
    status, body = get(
        base + "/v1/chat/completions",
        key=KEY,
        data={"messages": [{"role": "user", "content": "weather?"}], "tools": [TOOL]},
    )
    message = json.loads(body)["choices"][0]["message"]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"location": "San Francisco", "days": 1}
    assert message["content"].startswith("<think>") and "</think>" in message["content"]


def test_separate_reasoning_and_stream_done(sim, tmp_path):
    _, base = sim("vllm", "--model", str(tmp_path), "--reasoning-parser", "minimax_m2", FLEETSERVE_SIM_STARTUP_S="0")
    wait_status(base + "/health", 200)
    msg = json.loads(get(base + "/v1/chat/completions", data={"messages": [{"role": "user", "content": "hi"}]})[1])
    message = msg["choices"][0]["message"]
    # vLLM 0.26.0 names the separated reasoning `reasoning` (tests/fixtures/real-vllm-0.26.0)
    assert message["reasoning"] and "<think>" not in message["content"] and "reasoning_content" not in message
    body = get(base + "/v1/chat/completions", data={"stream": True, "messages": [{"role": "user", "content": "hi"}]})[1]
    assert body.rstrip().endswith("data: [DONE]")


def test_auto_tool_choice_needs_the_flag(sim, tmp_path):
    _, base = sim("vllm", "--model", str(tmp_path), "--tool-call-parser", "minimax_m2", FLEETSERVE_SIM_STARTUP_S="0")
    wait_status(base + "/health", 200)
    status, body = get(
        base + "/v1/chat/completions", data={"messages": [{"role": "user", "content": "x"}], "tools": [TOOL]}
    )
    assert status == 400 and "--enable-auto-tool-choice" in body


@pytest.mark.parametrize("engine,model_flag", [("vllm", "--model"), ("sglang", "--model-path")])
def test_crash(sim, tmp_path, engine, model_flag):
    proc, _ = sim(engine, model_flag, str(tmp_path), FLEETSERVE_SIM_STARTUP_S="0.2", FLEETSERVE_SIM_FAILURE="crash")
    assert proc.wait(10) == 1
    assert "simulated crash during start-up" in proc.stderr.read()


def test_hang_never_ready(sim, tmp_path):
    proc, base = sim("sglang", "--model-path", str(tmp_path), "--sim-failure", "hang", FLEETSERVE_SIM_STARTUP_S="0")
    wait_status(base + "/health", 503)
    time.sleep(0.5)
    assert get(base + "/health")[0] == 503 and proc.poll() is None


def test_missing_model_dir_fails(sim, tmp_path):
    proc, _ = sim("vllm", "--model", str(tmp_path / "absent"))
    assert proc.wait(10) == 1
    assert "does not exist (is the weights directory mounted?)" in proc.stderr.read()


def test_wheel_carries_the_pinned_version(tmp_path):
    wheel = build("sglang", "0.5.23", tmp_path)
    assert wheel.name == "sglang-0.5.23-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "sglang/launch_server.py" in names and "fleetserve_engine_sim/server.py" in names
    assert "Version: 0.5.23" in zipfile.ZipFile(wheel).read("sglang-0.5.23.dist-info/METADATA").decode()
    assert build("sglang", "0.5.23", tmp_path / "again").read_bytes() == wheel.read_bytes()  # reproducible


def test_sglang_answers_the_gateway_probes(sim, tmp_path):
    _, base = sim(
        "sglang",
        "--model-path",
        str(tmp_path),
        "--served-model-name",
        "M2",
        "--api-key",
        KEY,
        FLEETSERVE_SIM_STARTUP_S="0",
        FLEETSERVE_SIM_VERSION="0.5.23",
    )
    wait_status(base + "/health", 200)
    assert get(base + "/server_info")[0] == 401  # SGLang guards everything but /health, /metrics, /ready
    for path in ("/server_info", "/get_server_info"):
        info = json.loads(get(base + path, key=KEY)[1])
        assert (info["model_path"], info["served_model_name"], info["version"]) == (str(tmp_path), "M2", "0.5.23")
    for path in ("/model_info", "/get_model_info"):
        assert json.loads(get(base + path, key=KEY)[1])["served_model_name"] == "M2"


def _running(base):
    body = get(base + "/metrics")[1]
    line = next(x for x in body.splitlines() if x.startswith("sglang:num_running_reqs"))
    return float(line.rsplit(" ", 1)[1])


def test_sigterm_finishes_requests_in_flight(sim, tmp_path):
    proc, base = sim(
        "sglang",
        "--model-path",
        str(tmp_path),
        "--enable-metrics",
        FLEETSERVE_SIM_STARTUP_S="0",
        FLEETSERVE_SIM_LATENCY_S="1.5",
    )
    wait_status(base + "/health", 200)
    results = []
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    worker = threading.Thread(target=lambda: results.append(get(base + "/v1/chat/completions", data=chat)))
    worker.start()
    deadline = time.monotonic() + 5
    while _running(base) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(base) == 1.0  # the gauge the rollout polls while it drains a host
    proc.terminate()
    worker.join(10)
    assert proc.wait(10) == 0
    assert results and results[0][0] == 200 and json.loads(results[0][1])["choices"]
    with pytest.raises(urllib.error.URLError):  # no new connections once stopping
        get(base + "/health")
    assert "shutting down: waiting for 1 request(s) in flight" in proc.stderr.read()


def test_grace_limit_cuts_off_a_stuck_request(sim, tmp_path):
    proc, base = sim(
        "sglang",
        "--model-path",
        str(tmp_path),
        FLEETSERVE_SIM_STARTUP_S="0",
        FLEETSERVE_SIM_LATENCY_S="30",
        FLEETSERVE_SIM_GRACE_S="0.5",
    )
    wait_status(base + "/health", 200)
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    cut_off = []

    def stuck():
        try:
            get(base + "/v1/chat/completions", data=chat)
        except (urllib.error.URLError, ConnectionError) as exc:
            cut_off.append(exc)

    threading.Thread(target=stuck, daemon=True).start()
    time.sleep(0.5)
    started = time.monotonic()
    proc.terminate()
    assert proc.wait(10) == 0 and time.monotonic() - started < 5
    assert "shut down with 1 request(s) cut off" in proc.stderr.read()
    deadline = time.monotonic() + 5
    while not cut_off and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cut_off  # the client saw its request dropped, not a fake success


@pytest.mark.parametrize("version,fails", [("0.5.23", True), ("0.5.4.post1", False)])
def test_failure_limited_to_one_release(sim, tmp_path, version, fails):
    proc, base = sim(
        "sglang",
        "--model-path",
        str(tmp_path),
        FLEETSERVE_SIM_STARTUP_S="0.2",
        FLEETSERVE_SIM_FAILURE="crash",
        FLEETSERVE_SIM_FAILURE_VERSION="0.5.23",
        FLEETSERVE_SIM_VERSION=version,
    )
    if fails:
        assert proc.wait(10) == 1
    else:
        wait_status(base + "/health", 200)
        assert proc.poll() is None


@pytest.mark.parametrize(
    "key", ["plain-key", 'a"b', "$HOME", "back\\slash", "100%", "with space", "'single'", "#hash", "x: y"]
)
def test_the_sim_reads_back_the_exact_key_the_roles_write_into_the_sglang_config(tmp_path, key):
    """The SGLang secret config as the roles write it (_secrets.yaml_config: double-quoted keys and values) is read
    back byte for byte, as SGLang's own YAML merger does; a sim that misread it would serve without the key."""
    from ansible_collections.fleetserve.minimax.plugins.module_utils._secrets import yaml_config

    config = tmp_path / "secrets.yaml"
    config.write_text(yaml_config({"api-key": key}))
    from fleetserve_engine_sim import cli

    assert cli._read_config(str(config)) == ["--api-key", key]
