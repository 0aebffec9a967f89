"""The simulator answers as real vLLM 0.26.0 did on a lent H200 (tests/fixtures/real-vllm-0.26.0).

The recordings come from scripts/real_engine/vllm_on_device.py: real vLLM serving a random-weight
MiniMax-M2-architecture checkpoint, started with the argv our planner and the vllm_docker role render.
The simulator is started with that same argv and asked the same requests; status codes, content
types, JSON keys, stream framing, the 401 body and the metric lines the rollout drain reads must
match. Values that depend on the weights (the generated text, token counts, ids) are not compared.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "real-vllm-0.26.0"
REC = json.loads((FIXTURES / "recordings.json").read_text(encoding="utf-8"))
ANSWERS = REC["answers"]
KEY = "sim-real-compare-key"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The simulator with the recorded engine argv (port and model dir swapped for local ones)."""
    model_dir = tmp_path_factory.mktemp("model")
    argv = list(REC["argv"][3:])  # after python -m vllm.entrypoints.openai.api_server
    argv[argv.index("--model") + 1] = str(model_dir)
    argv[argv.index("--port") + 1] = str(_free_port())
    argv[argv.index("--host") + 1] = "127.0.0.1"
    port = int(argv[argv.index("--port") + 1])
    env = dict(
        os.environ,
        PYTHONPATH=str(HERE),
        VLLM_API_KEY=KEY,
        FLEETSERVE_SIM_STARTUP_S="0.5",
        FLEETSERVE_SIM_VERSION="0.26.0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetserve_engine_sim", "vllm", *argv], env=env, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if call("GET", base + "/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    yield {"base": base, "model_dir": str(model_dir)}
    proc.terminate()
    proc.wait(10)


def call(method, url, key=None, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("content-type"), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type"), err.read().decode()


def replay(sim, name):
    """Send the recorded request `name` to the simulator (same method, path, key use and body)."""
    rec = ANSWERS[name]
    key = {"models_no_key": None, "chat_no_key": None, "models_wrong_key": "wrong-key"}.get(name, KEY)
    if name in ("health", "ping", "version", "metrics_names"):
        key = None
    body = BODIES.get(name)
    return call(rec["method"], sim["base"] + rec["path"], key=key, body=body)


def _chat(model, max_tokens, tools=False, stream=False):
    # the verifier's own request builder, as the device run used it
    sys.path.insert(0, str(ROOT / ".cache" / "collections"))
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _openai

    return _openai.chat_request(model, max_tokens, tools=tools, stream=stream)


SERVED = REC["plan"]["served_model_name"]
BODIES = {
    "chat_no_key": _chat(SERVED, 8),
    "chat": _chat(SERVED, 32),
    "chat_stream": _chat(SERVED, 16, stream=True),
    "chat_tools": _chat(SERVED, 32, tools=True),
    "chat_unknown_model": _chat("no-such-model", 8),
    "chat_too_long": _chat(SERVED, 100000),
}


def keys(obj):
    """The nested key structure of a JSON value (lists by their first element)."""
    if isinstance(obj, dict):
        return {k: keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [keys(obj[0])] if obj else []
    return None


@pytest.mark.parametrize(
    "name",
    [
        "health",
        "ping",
        "version",
        "models_no_key",
        "models_wrong_key",
        "chat_no_key",
        "models",
        "chat",
        "chat_unknown_model",
        "chat_too_long",
    ],
)
def test_status_and_content_type(sim, name):
    status, ctype, _ = replay(sim, name)
    assert (status, ctype) == (ANSWERS[name]["status"], ANSWERS[name]["content_type"])


@pytest.mark.parametrize("name", ["models_no_key", "models_wrong_key", "chat_no_key"])
def test_401_body_is_vllms(sim, name):
    assert replay(sim, name)[2] == ANSWERS[name]["body"] == '{"error":"Unauthorized"}'


@pytest.mark.parametrize("name", ["health", "ping"])
def test_health_is_a_bare_200(sim, name):
    assert replay(sim, name)[2] == ANSWERS[name]["body"] == ""


def test_version(sim):
    assert json.loads(replay(sim, "version")[2]) == json.loads(ANSWERS["version"]["body"]) == {"version": "0.26.0"}


def test_models_keys(sim):
    real, ours = json.loads(ANSWERS["models"]["body"]), json.loads(replay(sim, "models")[2])
    assert keys(ours) == keys(real)
    assert ours["data"][0]["id"] == real["data"][0]["id"] and ours["data"][0]["max_model_len"] == 4096


@pytest.mark.parametrize("name", ["chat", "chat_tools"])
def test_chat_keys(sim, name):
    """Same keys at every level; the simulator's model calls the tool, so `tool_calls` is the one extra."""
    real, ours = json.loads(ANSWERS[name]["body"]), json.loads(replay(sim, name)[2])
    message = ours["choices"][0]["message"]
    if name == "chat_tools":
        assert message.pop("tool_calls")[0]["function"]["name"] == "get_weather"
    assert keys(ours) == keys(real)
    assert "reasoning_content" not in message  # vLLM 0.26.0 says `reasoning`


@pytest.mark.parametrize("name", ["chat_unknown_model", "chat_too_long"])
def test_error_objects(sim, name):
    real, ours = json.loads(ANSWERS[name]["body"]), json.loads(replay(sim, name)[2])
    assert keys(ours) == keys(real)
    assert {k: ours["error"][k] for k in ("type", "param", "code")} == {
        k: real["error"][k] for k in ("type", "param", "code")
    }
    if name == "chat_unknown_model":
        assert ours["error"]["message"] == real["error"]["message"]


def _events(text):
    """(events, blank separator after each) of an SSE body."""
    lines = text.split("\n")
    events = [ln for ln in lines if ln.strip()]
    return events, text.endswith("\n\n") and all(ln.startswith("data: ") for ln in events)


def test_stream_framing_and_chunk_keys(sim):
    real = ANSWERS["chat_stream"]
    status, ctype, text = replay(sim, "chat_stream")
    assert (status, ctype) == (real["status"], real["content_type"])
    events, framed = _events(text)
    assert framed and real["body"]["blank_line_after_each_event"]
    assert events[-1] == real["body"]["last"][-1] == "data: [DONE]"
    first_real, first_ours = (json.loads(e[len("data: ") :]) for e in (real["body"]["first"][0], events[0]))
    assert (
        first_ours["choices"][0]["delta"] == first_real["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    )
    assert keys(first_ours) == keys(first_real)
    middle_real, middle_ours = (json.loads(e[len("data: ") :]) for e in (real["body"]["first"][1], events[1]))
    assert keys(middle_ours)["choices"] == keys(middle_real)["choices"]
    assert set(middle_ours) == set(middle_real)
    finish_real, finish_ours = (json.loads(e[len("data: ") :]) for e in (real["body"]["last"][-3], events[-3]))
    assert finish_ours["choices"][0]["finish_reason"] and finish_real["choices"][0]["finish_reason"]
    assert keys(finish_ours) == keys(finish_real)
    usage_real, usage_ours = (json.loads(e[len("data: ") :]) for e in (real["body"]["last"][-2], events[-2]))
    assert usage_ours["choices"] == usage_real["choices"] == []
    assert set(usage_ours) == set(usage_real) and set(usage_ours["usage"]) == set(usage_real["usage"])


def _drain_regex():
    """The pattern roles/release/tasks/drain.yml applies to /metrics (its YAML-quoted regex_findall)."""
    text = (ROOT / "roles" / "release" / "tasks" / "drain.yml").read_text()
    found = re.search(r"regex_findall\('(.+?)', multiline=true\)", text)
    assert found, "roles/release/tasks/drain.yml no longer reads the in-flight gauge with regex_findall"
    return re.compile(found.group(1).replace("''", "'"), re.M)


def test_metrics_the_rollout_reads(sim):
    status, ctype, text = call("GET", sim["base"] + "/metrics")
    assert (status, ctype) == (ANSWERS["metrics"]["status"], ANSWERS["metrics"]["content_type"])
    drain = _drain_regex()
    real_lines = "\n".join(ANSWERS["metrics_selected"])
    assert drain.findall(real_lines) == ["0.0"]  # real vLLM: one engine, idle
    assert drain.findall(text) == ["0.0"]
    ours = {ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")}
    used = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}
    assert used <= set(ANSWERS["metrics_names"]), "real vLLM no longer exports a gauge we read"
    assert used <= ours
    assert ours <= set(
        ANSWERS["metrics_names"]
    ), f"the simulator invents {sorted(ours - set(ANSWERS['metrics_names']))}"
    label_sets = {
        re.sub(r'"[^"]*"', '""', ln.split("}")[0] + "}")
        for ln in text.splitlines()
        if ln.startswith("vllm:num_requests_")
    }
    real_sets = {
        re.sub(r'"[^"]*"', '""', ln.split("}")[0] + "}")
        for ln in ANSWERS["metrics_selected"]
        if ln.startswith("vllm:num_requests_")
    }
    assert label_sets == real_sets


def test_no_tcp_until_ready_like_vllm():
    """Real vLLM opened its port only when ready (/health 200 at once); the simulator binds late too."""
    warmup = REC["health_during_warmup"]
    assert [w["tcp"] for w in warmup] == [False, True] and warmup[-1]["status"] == 200


def test_planner_kv_prediction_is_within_5_percent_of_the_engine():
    """bench/planner.py's real_engine row: our plan for the recorded GPU against vLLM's logged KV cache."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "planner.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    row = json.loads(done.stdout)[-1]
    assert row["kind"] == "real_engine" and row["engine"] == "vllm 0.26.0" and row["gpu"] == "NVIDIA H200"
    assert row["engine_kv_tokens"] == REC["log_figures"]["kv_cache_tokens"] == 65_691_520
    assert row["ratio"] == round(row["predicted_kv_tokens"] / row["engine_kv_tokens"], 3)
    assert 0.95 <= row["ratio"] <= 1.05, row
    assert row["same_argv"], "the planner no longer renders the argv the engine was started with"


def test_the_engine_ran_with_our_argv_and_no_key_in_it():
    argv = REC["argv"]
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert "--api-key" not in argv and "VLLM_API_KEY" in REC["env_names"]
    for flag in ("--tool-call-parser", "--reasoning-parser", "--max-model-len", "--gpu-memory-utilization"):
        assert flag in argv
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in FIXTURES.iterdir())
    assert not re.search(r"fs-[0-9a-f]{32}", text)
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 1_000_000
