"""openai_endpoint_info, run as Ansible runs it (a Python subprocess reading its args file), against
stdlib servers the tests control: every failure mode the issue lists, and the MiniMax output shapes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from fake_openai import ANSWER, Behaviour, FakeOpenAI, free_port  # noqa: E402

pytestmark = pytest.mark.integration

SECRET = "sk-fs-verify-integration"
MODULE = "ansible_collections.fleetserve.minimax.plugins.modules.openai_endpoint_info"


@pytest.fixture()
def run_module(tmp_path, collection_root):
    collections = collection_root / ".cache" / "collections"

    def _run(**args):
        path = tmp_path / "args.json"
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", MODULE, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={"PYTHONPATH": str(collections), "PATH": "/usr/bin:/bin"},
        )
        wall = time.monotonic() - started
        assert proc.stdout.strip(), proc.stderr
        result = json.loads(proc.stdout)
        assert SECRET not in proc.stdout + proc.stderr
        return result, wall

    return _run


def base(server, **extra):
    args = {"base_url": server.url, "served_model_name": "fake-org/model", "timeout": 20, "sleep": 0.1}
    args.update(extra)
    return args


def run_ok(run_module, server, **extra):
    result, wall = run_module(**base(server, **extra))
    assert not result.get("failed"), result
    assert result["changed"] is False
    return result, wall


def chat_bodies(server):
    return [r["body"] for r in server.requests if r["path"] == "/v1/chat/completions"]


# ------------------------------------------------------------------------------------------ success


def test_sglang_warmup_then_everything_passes_with_append_think(run_module):
    behaviour = Behaviour(api_key=SECRET, health="warmup", healthy_after=1.0, chat="append_think")
    with FakeOpenAI(behaviour) as server:
        result, _ = run_ok(
            run_module,
            server,
            api_key=SECRET,
            engine="sglang",
            expect_reasoning="append_think",
            tool_call=True,
            stream=True,
        )
        assert list(result["stages"]) == ["tcp", "health", "models", "auth", "chat", "shape", "tool_call", "stream"]
        assert result["stages"]["health"]["attempts"] >= 3  # polled through a second of 503s
        assert result["stages"]["auth"]["status"] == 401
        assert "</think>" in result["reply"]["content"]
        assert result["tool_call"]["name"] == "get_weather"
        assert result["tool_call"]["arguments"] == {"location": "San Francisco", "unit": "celsius"}
        assert result["stream"]["done_marker"] is True
        assert result["stream"]["tokens_counted_from"] == "usage"
        assert result["stream"]["tokens_per_s"] > 0
        assert server.first_healthy_at - server.first_probe_at >= 1.0 and result["elapsed_s"] < 5
        # The guides' request: content as lists of text parts, key as a bearer token.
        first = chat_bodies(server)[0]
        assert first["messages"][0]["content"] == [{"type": "text", "text": "You are a helpful assistant."}]
        assert all(r["auth"] == "Bearer " + SECRET for r in server.requests if r["path"] == "/v1/chat/completions")
        assert [r["auth"] for r in server.requests if r["path"] == "/health"][-1] is None
        # The tool round trip sent the tool's answer back.
        assert chat_bodies(server)[2]["messages"][-1]["role"] == "tool"


def test_separated_reasoning_and_a_stream_without_done(run_module):
    with FakeOpenAI(Behaviour(chat="separate", stream="no_done")) as server:
        result, _ = run_ok(run_module, server, engine="vllm", expect_reasoning="separate", stream=True)
        assert result["reply"]["content"] == ANSWER
        assert result["reply"]["reasoning_content"].startswith("The user asks")
        assert result["stream"]["done_marker"] is False
        assert result["stream"]["tokens"] == len(ANSWER.split(" "))


# ------------------------------------------------------------------------------------------ failures


def expect_failure(run_module, args, reason, stage, status=None):
    result, wall = run_module(**args)
    assert result["failed"] is True, result
    assert (result["reason"], result["stage"]) == (reason, stage), result["msg"]
    assert result["status"] == status
    assert result["msg"].startswith(stage + " stage failed: ")
    assert result["elapsed_s"] >= 0
    return result, wall


def test_connection_refused_until_the_deadline(run_module):
    port = free_port()  # nothing listens there
    args = {"base_url": "http://127.0.0.1:%d" % port, "served_model_name": "m", "timeout": 1.5, "sleep": 0.1}
    result, wall = expect_failure(run_module, args, "tcp_unreachable", "tcp")
    assert result["url"] == "http://127.0.0.1:%d" % port
    assert result["msg"] == (
        "tcp stage failed: nothing accepted connections on 127.0.0.1:%d within 2 s; check that the engine "
        "service is running and listening there, or raise timeout for slow starts" % port
    )
    assert 1.5 <= result["elapsed_s"] < 3.5 and wall < 8


def test_health_hang_is_bounded_by_the_deadline(run_module):
    with FakeOpenAI(Behaviour(health="hang")) as server:
        result, wall = expect_failure(run_module, base(server, timeout=2), "health_no_answer", "health")
        assert result["url"] == server.url + "/health"
        assert 2 <= result["elapsed_s"] < 4 and wall < 8


def test_sglang_still_warming_at_the_deadline_even_though_models_answers(run_module):
    # SGLang answers /v1/models 200 before warm-up: the verifier must not take that as ready.
    with FakeOpenAI(Behaviour(health="warmup", healthy_after=60)) as server:
        result, _ = expect_failure(
            run_module, base(server, engine="sglang", timeout=1.5), "health_warming_up", "health", 503
        )
        assert result["body"] is None
        assert not any(r["path"] == "/v1/models" for r in server.requests)


def test_vllm_dead_engine(run_module):
    with FakeOpenAI(Behaviour(health="dead")) as server:
        result, _ = expect_failure(run_module, base(server, engine="vllm", timeout=1), "health_failing", "health", 503)
        assert "EngineDeadError" in result["msg"]


def test_wrong_api_key_gets_401(run_module):
    with FakeOpenAI(Behaviour(api_key=SECRET)) as server:
        result, _ = expect_failure(run_module, base(server, api_key="sk-wrong"), "auth_rejected", "models", 401)
        assert result["body"] == '{"error": "Unauthorized"}'
        assert result["url"] == server.url + "/v1/models"


def test_open_endpoint_when_a_key_is_configured(run_module):
    with FakeOpenAI(Behaviour(api_key=None)) as server:
        result, _ = expect_failure(run_module, base(server, api_key=SECRET), "auth_not_enforced", "auth", 200)
        assert "restart it with the key" in result["msg"]


def test_wrong_model_id(run_module):
    with FakeOpenAI(Behaviour(served=["MiniMaxAI/MiniMax-M2.5"])) as server:
        result, _ = expect_failure(
            run_module, base(server, served_model_name="MiniMax-M2.5"), "model_not_listed", "models"
        )
        assert result["msg"] == (
            "models stage failed: /v1/models lists [\"MiniMaxAI/MiniMax-M2.5\"], not 'MiniMax-M2.5'; set "
            "verify_served_model_name (module option served_model_name) to the name the engine serves, or restart "
            "the engine with --served-model-name MiniMax-M2.5"
        )


@pytest.mark.parametrize(
    "behaviour, stage",
    [(Behaviour(models="malformed"), "models"), (Behaviour(chat="malformed"), "chat")],
    ids=["models", "chat"],
)
def test_malformed_json(run_module, behaviour, stage):
    with FakeOpenAI(behaviour) as server:
        result, _ = expect_failure(run_module, base(server), "malformed_json", stage)
        assert result["body"] in ("<html>gateway</html>", '{"choices": [')


def test_chat_hang_hits_the_request_timeout(run_module):
    with FakeOpenAI(Behaviour(chat="hang")) as server:
        result, wall = expect_failure(run_module, base(server, request_timeout=1), "request_timeout", "chat")
        assert result["url"] == server.url + "/v1/chat/completions"
        assert wall < 10


def test_engine_error_reports_status_and_body(run_module):
    with FakeOpenAI(Behaviour(chat="error500")) as server:
        result, _ = expect_failure(run_module, base(server), "http_error", "chat", 500)
        assert "illegal memory access" in result["body"]


def test_stream_that_stalls(run_module):
    with FakeOpenAI(Behaviour(stream="stall")) as server:
        result, wall = expect_failure(
            run_module, base(server, stream=True, stream_idle_timeout=1), "stream_stalled", "stream"
        )
        assert result["msg"].endswith(
            "the engine stalled mid-generation: check its logs, or raise verify_stream_idle_timeout "
            "(module option stream_idle_timeout)"
        )
        assert "after 3 event(s)" in result["msg"]
        assert wall < 10
        assert "chat" in result["stages"]


def test_stream_malformed(run_module):
    with FakeOpenAI(Behaviour(stream="malformed")) as server:
        expect_failure(run_module, base(server, stream=True), "stream_malformed", "stream")


def test_stream_without_text(run_module):
    with FakeOpenAI(Behaviour(stream="empty")) as server:
        expect_failure(run_module, base(server, stream=True), "stream_empty", "stream")


@pytest.mark.parametrize(
    "behaviour, expect",
    [
        (Behaviour(chat="separate"), "append_think"),
        (Behaviour(chat="append_think"), "separate"),
        (Behaviour(chat="plain"), "append_think"),
    ],
    ids=["separate-but-append-expected", "append-but-separate-expected", "plain-but-append-expected"],
)
def test_shape_mismatch(run_module, behaviour, expect):
    with FakeOpenAI(behaviour) as server:
        result, _ = expect_failure(run_module, base(server, expect_reasoning=expect), "shape_mismatch", "shape")
        assert result["stages"]["chat"]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "tools, reason",
    [
        ("missing", "tool_call_missing"),
        ("wrong_name", "tool_call_invalid"),
        ("bad_args", "tool_call_invalid"),
        ("missing_required", "tool_call_invalid"),
    ],
)
def test_tool_call_failures(run_module, tools, reason):
    with FakeOpenAI(Behaviour(tools=tools, chat="append_think")) as server:
        expect_failure(run_module, base(server, tool_call=True, expect_reasoning="append_think"), reason, "tool_call")


def test_empty_reply(run_module):
    with FakeOpenAI(Behaviour(chat="empty")) as server:
        expect_failure(run_module, base(server), "empty_choice", "chat")
    with FakeOpenAI(Behaviour(chat="no_choices")) as server:
        expect_failure(run_module, base(server), "empty_choice", "chat")


def test_multi_node_worker_dummy_health_is_not_an_api(run_module):
    # SGLang node_rank >= 1 answers /health 200 from a dummy server and serves no /v1 routes.
    with FakeOpenAI(Behaviour(health="dummy")) as server:
        result, _ = expect_failure(run_module, base(server, engine="sglang"), "http_error", "models", 404)
        assert list(result["stages"]) == ["tcp", "health"]


def test_free_port_is_in_the_reserved_range():
    assert 18100 <= free_port() <= 18199
