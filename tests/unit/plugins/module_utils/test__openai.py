"""Pure parsing, shape checks and the staged wait of module_utils/_openai.py (no network)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _openai as o
from fake_clock import FakeClock

pytestmark = pytest.mark.unit

PARAMS = dict(
    base_url="http://127.0.0.1:8000",
    api_key=None,
    validate_certs=True,
    request_timeout=120.0,
    served_model_name="MiniMax-M2.5",
    engine="sglang",
    health_path="/health",
    timeout=30.0,
    sleep=0.2,
    expect_reasoning="none",
    max_tokens=64,
    tool_call=False,
    stream=False,
    stream_idle_timeout=30.0,
)


def reason_of(exc_info):
    return exc_info.value.reason


# ------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:8000", ("http://127.0.0.1:8000", "127.0.0.1", 8000)),
        ("http://node0:30000/", ("http://node0:30000", "node0", 30000)),
        ("https://gw.example/prefix", ("https://gw.example/prefix", "gw.example", 443)),
        ("http://h", ("http://h", "h", 80)),
    ],
)
def test_parse_base_url(url, expected):
    assert o.parse_base_url(url) == expected


@pytest.mark.parametrize(
    "url, message",
    [
        (
            "127.0.0.1:8000",
            "base_url '127.0.0.1:8000' is not an http(s) URL; give the server root, e.g. http://127.0.0.1:8000",
        ),
        ("ftp://h:1", "base_url 'ftp://h:1' is not an http(s) URL; give the server root, e.g. http://127.0.0.1:8000"),
        (
            "http://h:8000/v1",
            "base_url 'http://h:8000/v1' ends in /v1; give the server root (e.g. http://127.0.0.1:8000): "
            "the module adds /health and /v1/... itself",
        ),
        ("http://h:8000/?x=1", "base_url 'http://h:8000/?x=1' has a query or fragment; give the server root only"),
        ("http://h:99999", "base_url 'http://h:99999' has an invalid port; use a number from 1 to 65535"),
    ],
)
def test_parse_base_url_rejects(url, message):
    with pytest.raises(ValueError) as exc:
        o.parse_base_url(url)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    "change, message",
    [
        ({"timeout": 0}, "timeout is 0, out of range: set it to a number from 0.1 to 604800"),
        ({"request_timeout": -1}, "request_timeout is -1, out of range: set it to a number from 0.1 to 86400"),
        ({"sleep": 6}, "sleep is 6, out of range: set it to a number from 0.01 to 5"),
        ({"max_tokens": 0}, "max_tokens is 0, out of range: set it to a whole number from 1 to 1048576"),
        (
            {"served_model_name": " "},
            "served_model_name is empty; give the name the engine serves (--served-model-name)",
        ),
        ({"health_path": "health"}, "health_path 'health' must start with '/', e.g. /health"),
        ({"api_key": ""}, "api_key is set but empty; leave it unset for an open endpoint or give the engine's key"),
        ({"skip_checks": ["shape", "chat"]}, "skip_checks has chat; only shape, tool_call can be skipped"),
    ],
)
def test_check_options_rejects(change, message):
    with pytest.raises(ValueError) as exc:
        o.check_options(dict(PARAMS, **change))
    assert str(exc.value) == message


# ------------------------------------------------------------------------------------------ health


@pytest.mark.parametrize(
    "engine, status, state",
    [
        ("vllm", 200, "ready"),
        ("vllm", 503, "failing"),
        ("sglang", 503, "warming_up"),
        ("sglang", 200, "ready"),
        ("sglang", 500, "failing"),
        ("generic", 503, "failing"),
        ("generic", 404, "failing"),
    ],
)
def test_health_state(engine, status, state):
    assert o.health_state(engine, status) == state


@pytest.mark.parametrize(
    "engine, status, reason, fragment",
    [
        ("sglang", 503, "health_warming_up", "SGLang was still warming up (http://h/health answered 503)"),
        ("vllm", 503, "health_failing", "vLLM answers 503 when its engine core is dead (EngineDeadError)"),
        (
            "generic",
            404,
            "health_failing",
            "set verify_health_path (module option health_path) to the server's health route",
        ),
        ("vllm", None, "health_no_answer", "http://h/health accepted connections but never answered"),
    ],
)
def test_health_failure(engine, status, reason, fragment):
    err = o.health_failure(engine, status, "http://h/health")
    assert err.reason == reason
    assert fragment in err.message
    assert err.status == status


# ------------------------------------------------------------------------------------------ models


def test_listed_model_ids_and_match():
    ids = o.listed_model_ids({"object": "list", "data": [{"id": "a"}, {"id": "MiniMax-M2.5"}]})
    assert ids == ["a", "MiniMax-M2.5"]
    o.check_model_listed(ids, "MiniMax-M2.5")


@pytest.mark.parametrize("payload", [{"object": "list"}, {"data": [{"name": "x"}]}, [], {"data": "x"}])
def test_listed_model_ids_rejects_non_openai(payload):
    with pytest.raises(o.VerifyError) as exc:
        o.listed_model_ids(payload)
    assert reason_of(exc) == "malformed_json"
    assert exc.value.message.startswith("the /v1/models response has no 'data' list of objects with an 'id'")


def test_wrong_model_names_the_fix():
    with pytest.raises(o.VerifyError) as exc:
        o.check_model_listed(["MiniMaxAI/MiniMax-M2.5"], "MiniMax-M2.5")
    assert reason_of(exc) == "model_not_listed"
    assert exc.value.message == (
        "/v1/models lists [\"MiniMaxAI/MiniMax-M2.5\"], not 'MiniMax-M2.5'; set verify_served_model_name (module "
        "option served_model_name) to the name the engine serves, or restart the engine with --served-model-name "
        "MiniMax-M2.5"
    )


def test_parse_json_malformed():
    with pytest.raises(o.VerifyError) as exc:
        o.parse_json('{"choices": [', "chat completion")
    assert reason_of(exc) == "malformed_json"
    assert exc.value.message.startswith("the chat completion response is not valid JSON (")
    assert exc.value.body == '{"choices": ['


# ------------------------------------------------------------------------------------------ chat


def test_chat_request_uses_text_parts():
    body = o.chat_request("M", 32)
    assert body["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
        {"role": "user", "content": [{"type": "text", "text": "Who won the world series in 2020?"}]},
    ]
    assert body["model"] == "M" and body["max_tokens"] == 32
    assert "tools" not in body and "stream" not in body


def test_chat_request_tools_and_stream():
    body = o.chat_request("M", 32, tools=True, stream=True)
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == "auto"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"choices": []}, "empty_choice"),
        ({}, "empty_choice"),
        ({"choices": [{"text": "completion-style"}]}, "malformed_json"),
    ],
)
def test_first_choice_rejects(payload, reason):
    with pytest.raises(o.VerifyError) as exc:
        o.first_choice(payload)
    assert reason_of(exc) == reason


def test_empty_message_is_rejected():
    with pytest.raises(o.VerifyError) as exc:
        o.check_non_empty({"role": "assistant", "content": ""}, "stop")
    assert reason_of(exc) == "empty_choice"
    assert exc.value.message == (
        "choices[0].message has no content, reasoning or tool calls (finish_reason 'stop'); the model "
        "generated nothing: check the chat template and the engine logs"
    )


@pytest.mark.parametrize(
    "message",
    [{"content": "x"}, {"content": None, "reasoning_content": "r"}, {"content": None, "tool_calls": [{}]}],
)
def test_non_empty_accepts(message):
    o.check_non_empty(message, "stop")


# ------------------------------------------------------------------------------------------ shapes

APPEND = {"content": "<think>reasoning</think>\n\nThe Dodgers."}
SEPARATE = {"content": "The Dodgers.", "reasoning_content": "reasoning"}
SEPARATE_NEW_VLLM = {"content": "The Dodgers.", "reasoning": "reasoning"}
PLAIN = {"content": "The Dodgers."}


@pytest.mark.parametrize(
    "message, expect",
    [
        (APPEND, "append_think"),
        (SEPARATE, "separate"),
        (SEPARATE_NEW_VLLM, "separate"),
        (PLAIN, "none"),
        (APPEND, "none"),
    ],
)
def test_shape_accepts(message, expect):
    o.check_reasoning_shape(message, "stop", expect)


@pytest.mark.parametrize(
    "message, finish, expect, text",
    [
        (
            SEPARATE,
            "stop",
            "append_think",
            "expected the append-think shape (content carrying </think>) but content has no </think>; the server "
            "separated it into reasoning_content, so it runs a separating reasoning parser: set "
            "verify_expect_reasoning (module option expect_reasoning) to separate, or start the engine with the "
            "append-think parser (SGLang minimax-append-think, vLLM minimax_m2_append_think)",
        ),
        (
            {"content": "<think>still thinking"},
            "length",
            "append_think",
            "expected the append-think shape (content carrying </think>) but content has no </think> "
            "(finish_reason is 'length': the answer was cut off, raise verify_max_tokens, module option max_tokens); "
            "start the engine with the "
            "append-think reasoning parser (SGLang minimax-append-think, vLLM minimax_m2_append_think)",
        ),
        (
            APPEND,
            "stop",
            "separate",
            "expected separated reasoning (non-empty reasoning_content) but it is empty; start the engine with a "
            "separating reasoning parser (SGLang minimax, vLLM minimax_m2) or set verify_expect_reasoning (module option "
            "expect_reasoning) to append_think",
        ),
        (
            {"content": "<think>x</think>y", "reasoning_content": "x"},
            "stop",
            "separate",
            "expected separated reasoning but content still carries <think>; the reasoning parser did not split "
            "the output: check --reasoning-parser on the engine",
        ),
    ],
)
def test_shape_rejects(message, finish, expect, text):
    with pytest.raises(o.VerifyError) as exc:
        o.check_reasoning_shape(message, finish, expect)
    assert reason_of(exc) == "shape_mismatch"
    assert exc.value.message == text


# ------------------------------------------------------------------------------------------ tools


def call(name="get_weather", arguments='{"location": "San Francisco"}'):
    return {
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}],
    }


def test_tool_call_accepts():
    assert o.check_tool_call(call()) == ("get_weather", {"location": "San Francisco"})


@pytest.mark.parametrize(
    "message, reason, text",
    [
        (
            {"content": "<minimax:tool_call>..."},
            "tool_call_missing",
            "the model answered without tool_calls; start the engine with its tool-call parser",
        ),
        (call(name="get_time"), "tool_call_invalid", "tool_calls[0] calls 'get_time', not 'get_weather'"),
        (
            call(arguments="location=SF"),
            "tool_call_invalid",
            "tool_calls[0].function.arguments is not a JSON object string",
        ),
        (call(arguments='["SF"]'), "tool_call_invalid", "tool_calls[0].function.arguments is not a JSON object string"),
        (
            call(arguments='{"unit": "celsius"}'),
            "tool_call_invalid",
            'tool_calls[0] arguments lack the required location (got ["unit"]); '
            "the tool-call parser dropped parameters",
        ),
    ],
)
def test_tool_call_rejects(message, reason, text):
    with pytest.raises(o.VerifyError) as exc:
        o.check_tool_call(message)
    assert reason_of(exc) == reason
    assert exc.value.message.startswith(text)


def test_tool_round_trip_keeps_thinking_and_answers_the_call():
    request = o.chat_request("M", 32, tools=True)
    message = dict(call(), content="<think>need weather</think>")
    follow = o.tool_result_request(request, message)
    assistant, tool = follow["messages"][-2:]
    assert assistant == {
        "role": "assistant",
        "content": "<think>need weather</think>",
        "tool_calls": message["tool_calls"],
    }
    assert tool["role"] == "tool" and tool["tool_call_id"] == "c1"
    assert json.loads(tool["content"])["location"] == "San Francisco"
    assert len(request["messages"]) == 2  # the first turn is not mutated


# ------------------------------------------------------------------------------------------ stream


def sse(delta=None, finish=None, usage=None):
    chunk = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if delta or finish else []}
    if usage:
        chunk["usage"] = usage
    return "data: " + json.dumps(chunk)


def feed(lines, start=10.0, step=0.1):
    stats = o.StreamStats(start)
    now = start
    for line in lines:
        now += step
        if stats.feed(line, now):
            break
    return stats, now


def test_stream_with_done_and_usage():
    lines = [
        sse({"role": "assistant"}),
        "",
        sse({"content": "a"}),
        ": keep-alive",
        sse({"content": "b"}),
        sse({"content": "c"}),
        sse(finish="stop"),
        sse(usage={"completion_tokens": 3}),
        "data: [DONE]",
        sse({"content": "ignored"}),
    ]
    stats, now = feed(lines)
    summary = stats.summary(now)
    assert summary["done_marker"] is True
    assert summary["tokens"] == 3 and summary["tokens_counted_from"] == "usage"
    assert summary["ttft_s"] == pytest.approx(0.3)
    # 3 tokens between t=10.3 and t=10.6 -> 2 inter-token gaps in 0.3 s
    assert summary["tokens_per_s"] == pytest.approx(2 / 0.3, rel=1e-3)
    assert summary["finish_reason"] == "stop"


def test_stream_without_done_counts_chunks():
    stats, now = feed([sse({"content": "a"}), sse({"reasoning_content": "r"}), sse(finish="length")])
    summary = stats.summary(now)
    assert summary["done_marker"] is False
    assert summary["tokens"] == 2 and summary["tokens_counted_from"] == "chunks"


def test_stream_single_token_has_no_rate():
    stats, now = feed([sse({"content": "a"}), "data: [DONE]"])
    assert stats.summary(now)["tokens_per_s"] is None


def test_stream_without_text_is_empty():
    stats, now = feed([sse({"role": "assistant"}), sse(finish="stop"), "data: [DONE]"])
    with pytest.raises(o.VerifyError) as exc:
        stats.summary(now)
    assert reason_of(exc) == "stream_empty"
    assert exc.value.message == "the stream ended after 2 event(s) without any generated text; check the engine logs"


@pytest.mark.parametrize("line", ["data: {not json", "data: [1, 2]"])
def test_stream_malformed(line):
    with pytest.raises(o.VerifyError) as exc:
        feed([line])
    assert reason_of(exc) == "stream_malformed"


def test_excerpt_truncates():
    assert o.excerpt("x" * 510, 500) == "x" * 500 + "...[10 more chars]"
    assert o.excerpt(b"ok") == "ok"
    assert o.excerpt(None) is None


# ------------------------------------------------------------------------------------------ wait


class ScriptedClient:
    """Answers each path from a list of (status, body) in turn (the last one repeats)."""

    def __init__(self, clock, script, cost=0.01):
        self.clock, self.script, self.cost = clock, {k: list(v) for k, v in script.items()}, cost
        self.calls = []

    def url(self, path):
        return "http://127.0.0.1:8000" + path

    def call(self, path, timeout, body=None, auth=True):
        self.calls.append((path, auth, body))
        self.clock.now += self.cost
        queue = self.script[(path, auth)]
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        status, payload = item
        return o.Answer(status, payload if isinstance(payload, str) else json.dumps(payload))


def chat_ok(content="The Dodgers.", reasoning=None):
    msg = {"role": "assistant", "content": content}
    if reasoning:
        msg["reasoning_content"] = reasoning
    return (200, {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]})


def make(script, probe=lambda h, p, t: True, **params):
    clock = FakeClock(100.0)
    client = ScriptedClient(clock, script)
    verifier = o.Verifier(dict(PARAMS, **params), client, clock=clock, sleep=clock.sleep, probe=probe)
    return verifier, client, clock


MODELS = (200, {"data": [{"id": "MiniMax-M2.5"}]})


def test_sglang_warmup_then_ready_runs_every_stage_in_order():
    warm = [(503, {"status": "starting"})] * 5 + [(200, {"status": "ok"})]
    verifier, client, clock = make(
        {
            ("/health", False): warm,
            ("/v1/models", True): [MODELS],
            ("/v1/models", False): [(401, {"error": "Unauthorized"})],
            ("/v1/chat/completions", True): [chat_ok("<think>r</think>The Dodgers.")],
        },
        api_key="k",
        expect_reasoning="append_think",
    )
    result = verifier.run()
    assert list(result["stages"]) == ["tcp", "health", "models", "auth", "chat", "shape"]
    assert result["stages"]["health"]["attempts"] == 6
    assert result["models"] == ["MiniMax-M2.5"]
    assert [c[:2] for c in client.calls][-3:] == [
        ("/v1/models", True),
        ("/v1/models", False),
        ("/v1/chat/completions", True),
    ]
    # 5 polls at 0.2 s plus request costs: the ready answer is noticed within one poll interval.
    assert result["stages"]["health"]["elapsed_s"] == pytest.approx(5 * 0.2 + 6 * 0.01, abs=1e-6)


def test_warmup_past_the_deadline_reports_warming_up():
    verifier, _client, _clock = make({("/health", False): [(503, {})]}, timeout=3.0)
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert (exc.value.reason, exc.value.stage, exc.value.status) == ("health_warming_up", "health", 503)
    assert exc.value.url == "http://127.0.0.1:8000/health"


def test_tcp_never_opens():
    verifier, client, clock = make({}, probe=lambda h, p, t: False, timeout=2.0)
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert (exc.value.reason, exc.value.stage) == ("tcp_unreachable", "tcp")
    assert exc.value.message.startswith("nothing accepted connections on 127.0.0.1:8000 within 2 s")
    assert client.calls == []
    assert 2.0 <= clock.now - 100.0 < 2.3  # gave up at the deadline, not one poll later


def test_vllm_dead_engine_is_not_warming():
    verifier, _client, _clock = make({("/health", False): [(503, {})]}, engine="vllm", timeout=1.0)
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert exc.value.reason == "health_failing"


def test_hung_health_reports_no_answer():
    timeout = o.VerifyError("request_timeout", "hung")
    verifier, _client, _clock = make({("/health", False): [timeout]}, timeout=1.0)
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert exc.value.reason == "health_no_answer"


@pytest.mark.parametrize(
    "script_models, script_noauth, api_key, reason, stage, status",
    [
        ([(401, {"error": "Unauthorized"})], None, "wrong", "auth_rejected", "models", 401),
        ([(200, {"data": [{"id": "other"}]})], None, None, "model_not_listed", "models", None),
        ([(200, "<html>")], None, None, "malformed_json", "models", None),
        ([(404, {"detail": "Not Found"})], None, None, "http_error", "models", 404),
        ([MODELS], [(200, {"data": []})], "k", "auth_not_enforced", "auth", 200),
    ],
)
def test_models_and_auth_failures(script_models, script_noauth, api_key, reason, stage, status):
    script = {("/health", False): [(200, {})], ("/v1/models", True): script_models}
    if script_noauth:
        script[("/v1/models", False)] = script_noauth
    verifier, _client, _clock = make(script, api_key=api_key)
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert (exc.value.reason, exc.value.stage, exc.value.status) == (reason, stage, status)
    assert exc.value.url == "http://127.0.0.1:8000/v1/models"


def test_shape_failure_is_reported_at_the_shape_stage_after_chat_passed():
    verifier, _client, _clock = make(
        {("/health", False): [(200, {})], ("/v1/models", True): [MODELS], ("/v1/chat/completions", True): [chat_ok()]},
        expect_reasoning="separate",
    )
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert (exc.value.reason, exc.value.stage) == ("shape_mismatch", "shape")
    assert "chat" in verifier.stages and "shape" not in verifier.stages


def test_deadline_spent_before_chat():
    verifier, client, clock = make({("/health", False): [(200, {})], ("/v1/models", True): [MODELS]}, timeout=1.0)
    client.cost = 0.6  # two slow answers eat the whole deadline
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert (exc.value.reason, exc.value.stage) == ("deadline_exceeded", "chat")
    assert exc.value.message == "the 1 s deadline passed before the chat stage; raise timeout"


def test_tool_call_round_trip_sends_the_tool_result():
    tool = (200, {"choices": [{"message": call(), "finish_reason": "tool_calls"}]})
    verifier, client, _clock = make(
        {
            ("/health", False): [(200, {})],
            ("/v1/models", True): [MODELS],
            ("/v1/chat/completions", True): [chat_ok(), tool, chat_ok("It is sunny.")],
        },
        tool_call=True,
    )
    result = verifier.run()
    assert result["tool_call"] == {
        "name": "get_weather",
        "arguments": {"location": "San Francisco"},
        "final_finish_reason": "stop",
    }
    last_body = client.calls[-1][2]
    assert last_body["messages"][-1]["role"] == "tool"


# ------------------------------------------------------------------------------------------ skip_checks

# What real vLLM 0.26.0 answered a random-weight MiniMax-M2 checkpoint (tests/fixtures/real-vllm-0.26.0):
# append-think content that never closes </think>, and no tool call for the tools request.
REAL = json.loads(
    (Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "real-vllm-0.26.0" / "recordings.json").read_text(
        encoding="utf-8"
    )
)["answers"]


def real_script():
    answer = {name: (REAL[name]["status"], REAL[name]["body"]) for name in ("health", "models", "models_no_key")}
    chat, tools = (REAL["chat"]["status"], REAL["chat"]["body"]), (
        REAL["chat_tools"]["status"],
        REAL["chat_tools"]["body"],
    )
    return {
        ("/health", False): [answer["health"]],
        ("/v1/models", True): [answer["models"]],
        ("/v1/models", False): [answer["models_no_key"]],
        ("/v1/chat/completions", True): [chat, tools],
    }


def real_params(**extra):
    served = json.loads(REAL["models"]["body"])["data"][0]["id"]
    return dict(served_model_name=served, engine="vllm", api_key="k", expect_reasoning="append_think", **extra)


def test_random_weights_fail_the_tool_call_check_without_skip():
    # (the recorded chat reply happens to hold a random </think>, so its shape passes; the tool call cannot)
    verifier, _client, _clock = make(real_script(), **real_params(tool_call=True))
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert (exc.value.reason, exc.value.stage) == ("tool_call_missing", "tool_call")


def test_skip_checks_pass_the_real_vllm_answers_and_say_so():
    verifier, client, _clock = make(real_script(), **real_params(tool_call=True, skip_checks=["shape", "tool_call"]))
    result = verifier.run()
    assert list(result["stages"]) == ["tcp", "health", "models", "auth", "chat", "shape", "tool_call"]
    assert result["stages"]["shape"]["skipped"] and result["stages"]["tool_call"]["skipped"]
    assert "skipped" not in result["stages"]["chat"]
    assert result["skipped"] == ["shape", "tool_call"]
    assert result["tool_call"] == {"skipped": True, "tool_calls": 0, "finish_reason": "stop"}
    # the tools request was sent, and no follow-up turn with a tool result
    chats = [c for c in client.calls if c[0] == "/v1/chat/completions"]
    assert len(chats) == 2 and chats[-1][2]["tools"]


def test_skip_checks_still_require_a_served_chat():
    script = real_script()
    script[("/v1/chat/completions", True)] = [
        (200, {"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]})
    ]
    verifier, _client, _clock = make(script, **real_params(skip_checks=["shape"]))
    with pytest.raises(o.VerifyError) as exc:
        verifier.run()
    assert (exc.value.reason, exc.value.stage) == ("empty_choice", "chat")


def test_without_skip_checks_the_result_has_no_skipped_list():
    verifier, _client, _clock = make(
        {("/health", False): [(200, {})], ("/v1/models", True): [MODELS], ("/v1/chat/completions", True): [chat_ok()]}
    )
    assert "skipped" not in verifier.run()


# ------------------------------------------------------------------------------------------ TLS


@pytest.mark.parametrize("validate, mode", [(True, ssl.CERT_REQUIRED), (False, ssl.CERT_NONE)])
def test_https_context_follows_validate_certs_and_is_built_once(validate, mode):
    client = o.HttpClient("https://gw.example", validate_certs=validate)
    context = client.context()
    assert context.verify_mode == mode
    assert client.context() is context
