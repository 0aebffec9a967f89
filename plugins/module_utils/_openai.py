# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify that an OpenAI-compatible endpoint can serve: parsing, shape checks and the staged wait.

Private to the collection (leading underscore): no API promise. Everything that decides pass or
fail is a pure function raising :class:`VerifyError` (a ``ValueError``) whose message names the fix
and whose ``reason`` is a stable code. The only I/O lives in :class:`HttpClient` (through
``ansible.module_utils.urls``, so targets need no extra Python packages) and :func:`tcp_open`; the
orchestration in :class:`Verifier` takes the clock, sleep and client as arguments so tests drive it.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from urllib.error import HTTPError
from urllib.parse import urlsplit

from ansible.module_utils.urls import Request, make_context
from ansible_collections.fleetserve.minimax.plugins.module_utils._bounds import bounds_error, ranges_of
from ansible_collections.fleetserve.minimax.plugins.module_utils._health import health_state  # noqa: F401 (re-exported)

STAGES = ("tcp", "health", "models", "auth", "chat", "shape", "tool_call", "stream")
REASONS = (
    "tcp_unreachable",
    "health_warming_up",
    "health_failing",
    "health_no_answer",
    "auth_rejected",
    "auth_not_enforced",
    "http_error",
    "connection_error",
    "tls_untrusted",
    "request_timeout",
    "deadline_exceeded",
    "malformed_json",
    "model_not_listed",
    "empty_choice",
    "shape_mismatch",
    "tool_call_missing",
    "tool_call_invalid",
    "stream_stalled",
    "stream_malformed",
    "stream_empty",
)
ENGINES = ("vllm", "sglang", "generic")
REASONING_SHAPES = ("none", "append_think", "separate")
# Checks that judge what the model wrote rather than what the engine serves. A random-weight model
# (the lab's tiny checkpoints) never closes </think> nor calls a tool, so these can be skipped: the
# request is still sent and its answer still has to be a 200 with a choice, only the check is not made.
SKIPPABLE_CHECKS = ("shape", "tool_call")
EXCERPT_CHARS = 500

# The MiniMax deployment guides test with this request; content as lists of text parts is part of
# what they exercise (some chat templates only handle plain strings).
SYSTEM_PROMPT = "You are a helpful assistant."
USER_PROMPT = "Who won the world series in 2020?"
TOOL_PROMPT = "What is the weather in San Francisco? Use the get_weather tool."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}

# Shared connection options (documented in doc_fragments/openai_endpoint.py).
ENDPOINT_ARGSPEC = dict(
    base_url=dict(type="str", required=True),
    api_key=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    request_timeout=dict(type="float", default=120.0),
)

# The ranges the DOCUMENTATION of openai_endpoint_info (and the openai_endpoint doc fragment) states.
BOUNDS = dict(
    request_timeout=(0.1, 86400.0),
    timeout=(0.1, 604800.0),
    sleep=(0.01, 5.0),
    stream_idle_timeout=(0.1, 86400.0),
    max_tokens=(1, 1048576),
)


class VerifyError(ValueError):
    """A verification failure: ``reason`` is a stable code from :data:`REASONS`."""

    def __init__(self, reason, message, status=None, body=None, stage=None, url=None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.body = body
        self.stage = stage
        self.url = url


def excerpt(text, limit=EXCERPT_CHARS):
    """The start of a response body, for failure reports."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "...[%d more chars]" % (len(text) - limit)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def parse_base_url(base_url):
    """Split ``http(s)://host[:port][/prefix]`` into (base without trailing slash, host, port)."""
    parts = urlsplit(base_url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "base_url %r is not an http(s) URL; give the server root, e.g. http://127.0.0.1:8000" % (base_url,)
        )
    if parts.path.rstrip("/").endswith("/v1"):
        raise ValueError(
            "base_url %r ends in /v1; give the server root (e.g. http://127.0.0.1:8000): "
            "the module adds /health and /v1/... itself" % (base_url,)
        )
    if parts.query or parts.fragment:
        raise ValueError("base_url %r has a query or fragment; give the server root only" % (base_url,))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("base_url %r has an invalid port; use a number from 1 to 65535" % (base_url,)) from None
    return base_url.rstrip("/"), parts.hostname, port


def check_options(params):
    """Checks the argspec cannot express. Raises ValueError naming the option to fix."""
    error = bounds_error(params, ranges_of(BOUNDS))
    if error:
        raise ValueError(error)
    if not params["served_model_name"].strip():
        raise ValueError("served_model_name is empty; give the name the engine serves (--served-model-name)")
    if not params["health_path"].startswith("/"):
        raise ValueError("health_path %r must start with '/', e.g. /health" % (params["health_path"],))
    if params["api_key"] is not None and not params["api_key"].strip():
        raise ValueError("api_key is set but empty; leave it unset for an open endpoint or give the engine's key")
    ca_path = params.get("ca_path")
    if ca_path:
        if not params["base_url"].startswith("https:"):
            raise ValueError(
                "ca_path is set but base_url %s is not https: serve the engine with TLS and use https, or leave "
                "ca_path unset" % params["base_url"]
            )
        if not params.get("validate_certs", True):
            raise ValueError("ca_path is set but validate_certs is false: nothing would be checked against it")
        try:
            with open(ca_path, "rb") as handle:
                pem = handle.read()
        except OSError as exc:
            raise ValueError(
                "ca_path %s cannot be read (%s): give the PEM CA bundle on the machine that "
                "sends the requests" % (ca_path, exc.strerror or exc)
            ) from None
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            raise ValueError("ca_path %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)" % ca_path)
    unknown = sorted(set(params.get("skip_checks") or ()) - set(SKIPPABLE_CHECKS))
    if unknown:
        raise ValueError(
            "skip_checks has %s; only %s can be skipped" % (", ".join(unknown), ", ".join(SKIPPABLE_CHECKS))
        )
    return parse_base_url(params["base_url"])


# ---------------------------------------------------------------------------------------------
# Pure checks on answers
# ---------------------------------------------------------------------------------------------


def health_failure(engine, status, health_url):
    """The error for a health endpoint that never turned 200 before the deadline."""
    if status is None:
        return VerifyError(
            "health_no_answer",
            "%s accepted connections but never answered before the deadline; the server is hung or "
            "overloaded: check the engine logs, or raise timeout/request_timeout for slow starts" % health_url,
        )
    state = health_state(engine, status)
    if state == "warming_up":
        return VerifyError(
            "health_warming_up",
            "SGLang was still warming up (%s answered 503) when the deadline passed; raise timeout "
            "(large models need minutes to load and warm up) or check the engine logs" % health_url,
            status=status,
        )
    hint = {
        "vllm": "vLLM answers 503 when its engine core is dead (EngineDeadError): read the service logs and restart it",
        "sglang": "check the SGLang service logs",
    }.get(
        engine,
        "check the server logs, or set verify_health_path (module option health_path) to the server's health route",
    )
    return VerifyError(
        "health_failing",
        "%s answered HTTP %s instead of 200 until the deadline; %s" % (health_url, status, hint),
        status=status,
    )


def parse_json(text, what):
    """Decode a JSON body, or fail with ``malformed_json`` naming ``what`` was being read."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise VerifyError(
            "malformed_json",
            "the %s response is not valid JSON (%s); is base_url pointing at an OpenAI-compatible server?"
            % (what, exc),
            body=excerpt(text),
        ) from None


def listed_model_ids(payload):
    """The ``id`` of every entry of a ``/v1/models`` answer."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        raise VerifyError(
            "malformed_json",
            "the /v1/models response has no 'data' list of objects with an 'id'; "
            "is base_url pointing at an OpenAI-compatible server?",
            body=excerpt(json.dumps(payload)),
        )
    return [m["id"] for m in data]


def check_model_listed(ids, served_model_name):
    if served_model_name not in ids:
        raise VerifyError(
            "model_not_listed",
            "/v1/models lists %s, not %r; set verify_served_model_name (module option served_model_name) to the "
            "name the engine serves, or restart the engine with --served-model-name %s"
            % (json.dumps(ids), served_model_name, served_model_name),
        )


def chat_request(model, max_tokens, tools=False, stream=False):
    """The guides' chat request: system and user content as lists of text parts."""
    user = TOOL_PROMPT if tools else USER_PROMPT
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
            {"role": "user", "content": [{"type": "text", "text": user}]},
        ],
        "max_tokens": max_tokens,
    }
    if tools:
        body["tools"] = [WEATHER_TOOL]
        body["tool_choice"] = "auto"
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def reasoning_text(message):
    """Separated reasoning: ``reasoning_content`` (SGLang, older vLLM) or ``reasoning`` (newer vLLM)."""
    return message.get("reasoning_content") or message.get("reasoning") or ""


def first_choice(payload):
    """(message, finish_reason) of ``choices[0]``; ``empty_choice`` when there is nothing in it."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise VerifyError(
            "empty_choice",
            "the chat completion has no choices; the engine accepted the request but produced nothing: check its logs",
            body=excerpt(json.dumps(payload)),
        )
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise VerifyError(
            "malformed_json",
            "choices[0] of the chat completion has no 'message' object; the server is not OpenAI-compatible",
            body=excerpt(json.dumps(payload)),
        )
    return message, choices[0].get("finish_reason")


def check_non_empty(message, finish_reason):
    if not (message.get("content") or reasoning_text(message) or message.get("tool_calls")):
        raise VerifyError(
            "empty_choice",
            "choices[0].message has no content, reasoning or tool calls (finish_reason %r); the model "
            "generated nothing: check the chat template and the engine logs" % (finish_reason,),
        )


def check_reasoning_shape(message, finish_reason, expect):
    """The output shape the reasoning parser should give (engine-facts section 5)."""
    content = message.get("content") or ""
    reasoning = reasoning_text(message)
    truncated = (
        " (finish_reason is 'length': the answer was cut off, raise verify_max_tokens, module option max_tokens)"
        if finish_reason == "length"
        else ""
    )
    if expect == "append_think" and "</think>" not in content:
        fix = (
            "the server separated it into reasoning_content, so it runs a separating reasoning parser: "
            "set verify_expect_reasoning (module option expect_reasoning) to separate, or start the engine with the "
            "append-think parser "
            "(SGLang minimax-append-think, vLLM minimax_m2_append_think)"
            if reasoning
            else "start the engine with the append-think reasoning parser "
            "(SGLang minimax-append-think, vLLM minimax_m2_append_think)"
        )
        raise VerifyError(
            "shape_mismatch",
            "expected the append-think shape (content carrying </think>) but content has no </think>%s; %s"
            % (truncated, fix),
            body=excerpt(content),
        )
    if expect == "separate":
        if not reasoning:
            raise VerifyError(
                "shape_mismatch",
                "expected separated reasoning (non-empty reasoning_content) but it is empty%s; start the engine "
                "with a separating reasoning parser (SGLang minimax, vLLM minimax_m2) or set "
                "verify_expect_reasoning (module option expect_reasoning) to append_think" % truncated,
                body=excerpt(content),
            )
        if "<think>" in content:
            raise VerifyError(
                "shape_mismatch",
                "expected separated reasoning but content still carries <think>; the reasoning parser did not "
                "split the output: check --reasoning-parser on the engine",
                body=excerpt(content),
            )


def check_tool_call(message, name="get_weather", required=("location",)):
    """(name, arguments dict) of ``tool_calls[0]``, which must call ``name`` with JSON arguments."""
    calls = message.get("tool_calls") or []
    if not calls:
        raise VerifyError(
            "tool_call_missing",
            "the model answered without tool_calls; start the engine with its tool-call parser "
            "(SGLang --tool-call-parser minimax-m2, vLLM --enable-auto-tool-choice --tool-call-parser "
            "minimax_m2 or minimax for M1), or set verify_tool_call (module option tool_call) to false for a model "
            "without tools",
            body=excerpt(message.get("content")),
        )
    function = calls[0].get("function") if isinstance(calls[0], dict) else None
    if not isinstance(function, dict) or function.get("name") != name:
        got = function.get("name") if isinstance(function, dict) else None
        raise VerifyError(
            "tool_call_invalid",
            "tool_calls[0] calls %r, not %r; the tool-call parser mangled the call: check --tool-call-parser"
            % (got, name),
            body=excerpt(json.dumps(calls[0])),
        )
    raw = function.get("arguments")
    try:
        args = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise VerifyError(
            "tool_call_invalid",
            "tool_calls[0].function.arguments is not a JSON object string: %s; check --tool-call-parser"
            % excerpt(repr(raw), 200),
        )
    missing = [key for key in required if key not in args]
    if missing:
        raise VerifyError(
            "tool_call_invalid",
            "tool_calls[0] arguments lack the required %s (got %s); the tool-call parser dropped parameters"
            % (", ".join(missing), json.dumps(sorted(args))),
        )
    return function["name"], args


def tool_result_request(request, message):
    """The second turn of the round trip: the assistant's call (content kept verbatim, since MiniMax
    needs its <think> history back) followed by the tool's answer."""
    call = message["tool_calls"][0]
    follow = dict(request)
    follow["messages"] = list(request["messages"]) + [
        {"role": "assistant", "content": message.get("content") or "", "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": call.get("id") or "call_0",
            "content": json.dumps({"location": "San Francisco", "temperature_c": 21, "sky": "clear"}),
        },
    ]
    return follow


# ---------------------------------------------------------------------------------------------
# Streaming (server-sent events)
# ---------------------------------------------------------------------------------------------


class StreamStats(object):
    """Accumulates a chat-completions SSE stream fed line by line with the time each line arrived.

    Ends on ``data: [DONE]`` or at end of stream (transformers serve sends no [DONE]).
    """

    def __init__(self, started):
        self.started = started
        self.first_token_at = None
        self.last_token_at = None
        self.chunks = 0
        self.content_chunks = 0
        self.done_marker = False
        self.usage_tokens = None
        self.finish_reason = None

    def feed(self, line, now):
        """Consume one line; True once ``[DONE]`` arrived."""
        line = line.strip()
        if not line or line.startswith(":") or not line.startswith("data:"):
            return False  # blank separators, comments/keep-alives, event:/id: fields
        data = line[5:].strip()
        if data == "[DONE]":
            self.done_marker = True
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            raise VerifyError(
                "stream_malformed",
                "a stream event is not JSON; the server's streaming is broken: check the engine logs",
                body=excerpt(data),
            ) from None
        if not isinstance(chunk, dict):
            raise VerifyError("stream_malformed", "a stream event is JSON but not an object", body=excerpt(data))
        self.chunks += 1
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_tokens = usage["completion_tokens"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content") or reasoning_text(delta) or delta.get("tool_calls"):
                self.content_chunks += 1
                self.first_token_at = self.first_token_at if self.first_token_at is not None else now
                self.last_token_at = now
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return False

    def summary(self, ended):
        if self.first_token_at is None:
            raise VerifyError(
                "stream_empty",
                "the stream ended after %d event(s) without any generated text; check the engine logs" % self.chunks,
            )
        tokens = self.usage_tokens if self.usage_tokens is not None else self.content_chunks
        gen_time = (self.last_token_at or ended) - self.first_token_at
        return {
            "ttft_s": round(self.first_token_at - self.started, 4),
            "tokens": tokens,
            "tokens_counted_from": "usage" if self.usage_tokens is not None else "chunks",
            # One token alone has no rate; report None rather than a division by ~0.
            "tokens_per_s": round((tokens - 1) / gen_time, 2) if tokens > 1 and gen_time > 0 else None,
            "chunks": self.chunks,
            "done_marker": self.done_marker,
            "finish_reason": self.finish_reason,
            "elapsed_s": round(ended - self.started, 4),
        }


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------


def tcp_open(host, port, timeout):
    """True when a TCP connection to host:port succeeds within ``timeout`` seconds."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:  # refused, unreachable, timed out (socket.timeout is an OSError)
        return False
    sock.close()
    return True


class Answer(object):
    def __init__(self, status, body):
        self.status = status
        self.body = body


def _is_timeout(exc):
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, TimeoutError) or "timed out" in str(reason)


class HttpClient(object):
    """GET/POST JSON through ``ansible.module_utils.urls``; every HTTP status comes back as an
    :class:`Answer`, network failures as ``connection_error`` / ``request_timeout``."""

    def __init__(self, base_url, api_key=None, validate_certs=True, ca_path=None):
        self.base_url = base_url
        self.api_key = api_key
        self.validate_certs = validate_certs
        # A CA bundle replaces the system store: only certificates it signed are trusted.
        self.ca_path = ca_path or None
        self._context = None

    def context(self):
        # open_url would build a TLS context, loading the whole CA store, on every request (about
        # 0.1 s each): too slow for readiness polling, so build it once, and only for https.
        if self._context is None:
            if self.base_url.startswith("https:"):
                self._context = make_context(cafile=self.ca_path, validate_certs=self.validate_certs)
            else:
                self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return self._context

    def url(self, path):
        return self.base_url + path

    def _headers(self, auth, body):
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth and self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        return headers

    def open(self, path, timeout, body=None, auth=True):
        data = json.dumps(body).encode() if body is not None else None
        return Request().open(
            "POST" if body is not None else "GET",
            self.url(path),
            data=data,
            headers=self._headers(auth, body),
            timeout=timeout,
            validate_certs=self.validate_certs,
            follow_redirects="none",
            use_proxy=False,
            use_netrc=False,  # a ~/.netrc entry must not replace the bearer key
            context=self.context(),
        )

    def call(self, path, timeout, body=None, auth=True):
        try:
            resp = self.open(path, timeout, body=body, auth=auth)
            return Answer(resp.getcode(), resp.read().decode("utf-8", errors="replace"))
        except HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", errors="replace")
            except Exception:  # a body that cannot be read is reported as absent
                text = ""
            return Answer(exc.code, text)
        except Exception as exc:  # URLError, socket errors, http.client errors
            raise self.network_error(path, timeout, exc) from exc

    def network_error(self, path, timeout, exc):
        if _is_timeout(exc):
            return VerifyError(
                "request_timeout",
                "%s did not answer within %.1f s; the engine is hung or overloaded: check its logs, or raise "
                "request_timeout" % (self.url(path), timeout),
                url=self.url(path),
            )
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return VerifyError(
                "tls_untrusted",
                "the TLS certificate of %s is not trusted by %s (%s): give the CA bundle that signed the engine's "
                "certificate in ca_path (verify_ca_path of the verify role), and make the certificate name the "
                "address in base_url"
                % (
                    self.url(path),
                    ("the CA bundle %s" % self.ca_path) if self.ca_path else "the system CA store",
                    getattr(reason, "verify_message", None) or reason,
                ),
                url=self.url(path),
            )
        return VerifyError(
            "connection_error",
            "connection to %s failed (%s); the server went away: check that the engine is running"
            % (self.url(path), reason),
            url=self.url(path),
        )


# ---------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------


class Verifier(object):
    """Runs the stages in order under one deadline; ``run()`` returns the result dict or raises
    :class:`VerifyError` with ``stage`` and ``url`` filled in."""

    def __init__(self, params, client, clock=time.monotonic, sleep=time.sleep, probe=None):
        self.p = params
        self.client = client
        self.clock = clock
        self.sleep = sleep
        self.probe = probe or tcp_open
        self.started = clock()
        self.deadline = self.started + params["timeout"]
        self.stages = {}
        self.result = {}
        self.skip = frozenset(params.get("skip_checks") or ())

    # -- helpers ---------------------------------------------------------------------------
    def remaining(self):
        return self.deadline - self.clock()

    def request_timeout(self, stage):
        left = self.remaining()
        if left <= 0:
            raise VerifyError(
                "deadline_exceeded",
                "the %.0f s deadline passed before the %s stage; raise timeout" % (self.p["timeout"], stage),
            )
        return min(self.p["request_timeout"], left)

    def record(self, stage, since, **extra):
        now = self.clock()
        entry = {"elapsed_s": round(now - since, 4)}
        entry.update(extra)
        self.stages[stage] = entry
        return now

    def call(self, stage, path, body=None, auth=True):
        answer = self.client.call(path, self.request_timeout(stage), body=body, auth=auth)
        if answer.status == 401 and auth:
            raise VerifyError(
                "auth_rejected",
                "%s rejected the request with HTTP 401; set fleetserve_api_key (module option api_key) to the key the "
                "engine was started with" % self.client.url(path),
                status=401,
                body=excerpt(answer.body),
            )
        if auth and answer.status != 200:
            raise VerifyError(
                "http_error",
                "%s answered HTTP %s; check the engine logs (a 400 often means the model name or request "
                "shape is wrong for this engine)" % (self.client.url(path), answer.status),
                status=answer.status,
                body=excerpt(answer.body),
            )
        return answer

    # -- stages ----------------------------------------------------------------------------
    def wait_ready(self):
        """TCP, then health, polled every ``sleep`` seconds until ready or the deadline."""
        host, port = parse_base_url(self.p["base_url"])[1:]
        tcp_at = None
        status, answered, attempts = None, False, 0
        while True:
            attempts += 1
            if tcp_at is None and self.probe(host, port, max(min(2.0, self.remaining()), 0.05)):
                tcp_at = self.record("tcp", self.started, attempts=attempts)
            if tcp_at is not None:
                try:
                    answer = self.client.call(self.p["health_path"], self.request_timeout("health"), auth=False)
                    status, answered = answer.status, True
                except VerifyError as exc:
                    if exc.reason == "deadline_exceeded":
                        break
                    if exc.reason == "tls_untrusted":
                        # Waiting cannot make a certificate trusted: fail now, not at the deadline.
                        exc.stage = "health"
                        raise
                    status = None  # hung or restarting: keep polling until the deadline
                if status is not None and health_state(self.p["engine"], status) == "ready":
                    self.record("health", tcp_at, status=status, attempts=attempts)
                    return
            if self.remaining() <= 0:
                break
            self.sleep(min(self.p["sleep"], max(self.remaining(), 0)))
            if self.remaining() <= 0:
                break
        if tcp_at is None:
            raise VerifyError(
                "tcp_unreachable",
                "nothing accepted connections on %s:%s within %.0f s; check that the engine service is running "
                "and listening there, or raise timeout for slow starts" % (host, port, self.p["timeout"]),
                stage="tcp",
                url=self.p["base_url"],
            )
        err = health_failure(self.p["engine"], status if answered else None, self.client.url(self.p["health_path"]))
        err.stage, err.url = "health", self.client.url(self.p["health_path"])
        raise err

    def check_models(self):
        since = self.clock()
        answer = self.call("models", "/v1/models")
        ids = listed_model_ids(parse_json(answer.body, "/v1/models"))
        check_model_listed(ids, self.p["served_model_name"])
        self.result["models"] = ids
        self.record("models", since, status=answer.status)

    def check_auth(self):
        since = self.clock()
        answer = self.call("auth", "/v1/models", auth=False)
        if answer.status != 401:
            raise VerifyError(
                "auth_not_enforced",
                "/v1/models answered HTTP %s without the API key (expected 401); the engine runs without "
                "--api-key: restart it with the key (fleetserve_api_key)" % answer.status,
                status=answer.status,
                body=excerpt(answer.body),
            )
        self.record("auth", since, status=401)

    def chat(self, stage, body):
        answer = self.call(stage, "/v1/chat/completions", body=body)
        return first_choice(parse_json(answer.body, "chat completion"))

    def check_chat(self):
        since = self.clock()
        message, finish = self.chat("chat", chat_request(self.p["served_model_name"], self.p["max_tokens"]))
        check_non_empty(message, finish)
        at = self.record("chat", since, finish_reason=finish)
        self.result["reply"] = {
            "content": excerpt(message.get("content"), 200),
            "reasoning_content": excerpt(reasoning_text(message) or None, 200),
            "finish_reason": finish,
        }
        if "shape" in self.skip:
            self.record("shape", at, expect=self.p["expect_reasoning"], skipped=True)
            return
        check_reasoning_shape(message, finish, self.p["expect_reasoning"])
        self.record("shape", at, expect=self.p["expect_reasoning"])

    def check_tool_call(self):
        since = self.clock()
        request = chat_request(self.p["served_model_name"], self.p["max_tokens"], tools=True)
        message, finish = self.chat("tool_call", request)
        if "tool_call" in self.skip:
            # The request went through (HTTP 200, one choice); what the model made of it is not judged.
            self.result["tool_call"] = {
                "skipped": True,
                "tool_calls": len(message.get("tool_calls") or []),
                "finish_reason": finish,
            }
            self.record("tool_call", since, skipped=True)
            return
        name, args = check_tool_call(message)
        answer, finish = self.chat("tool_call", tool_result_request(request, message))
        check_non_empty(answer, finish)
        self.result["tool_call"] = {"name": name, "arguments": args, "final_finish_reason": finish}
        self.record("tool_call", since)

    def check_stream(self):
        body = chat_request(self.p["served_model_name"], self.p["max_tokens"], stream=True)
        path = "/v1/chat/completions"
        idle = min(self.p["stream_idle_timeout"], self.request_timeout("stream"))
        started = self.clock()
        try:
            resp = self.client.open(path, idle, body=body)
        except HTTPError as exc:
            raise VerifyError(
                "http_error",
                "%s answered HTTP %s to a streaming request; check the engine logs" % (self.client.url(path), exc.code),
                status=exc.code,
                body=excerpt(exc.read()),
            ) from None
        except Exception as exc:
            raise self.client.network_error(path, idle, exc) from exc
        stats = StreamStats(started)
        try:
            while True:
                line = resp.readline()
                if not line:
                    break  # end of stream without [DONE] (transformers serve)
                if stats.feed(line.decode("utf-8", errors="replace"), self.clock()):
                    break
                if self.remaining() <= 0:
                    raise VerifyError("deadline_exceeded", "the deadline passed while streaming; raise timeout")
        except VerifyError:
            raise
        except Exception as exc:
            if _is_timeout(exc):
                raise VerifyError(
                    "stream_stalled",
                    "the stream sent nothing for %.1f s after %d event(s); the engine stalled mid-generation: "
                    "check its logs, or raise verify_stream_idle_timeout (module option stream_idle_timeout)"
                    % (idle, stats.chunks),
                ) from None
            raise self.client.network_error(path, idle, exc) from exc
        finally:
            resp.close()
        self.result["stream"] = stats.summary(self.clock())
        self.record("stream", started, ttft_s=self.result["stream"]["ttft_s"])

    def run(self):
        current = "tcp"
        try:
            self.wait_ready()
            steps = [("models", self.check_models)]
            if self.p["api_key"]:
                steps.append(("auth", self.check_auth))
            steps.append(("chat", self.check_chat))
            if self.p["tool_call"]:
                steps.append(("tool_call", self.check_tool_call))
            if self.p["stream"]:
                steps.append(("stream", self.check_stream))
            for current, step in steps:  # noqa: B007 - `current` names the failing stage below
                step()
        except VerifyError as exc:
            if exc.stage is None:
                # A shape failure is raised inside the chat step, after the chat stage was recorded.
                exc.stage = "shape" if exc.reason == "shape_mismatch" else current
            if exc.url is None:
                exc.url = self.client.url(_STAGE_PATH.get(exc.stage, ""))
            raise
        self.result["stages"] = self.stages
        if self.skip:
            self.result["skipped"] = [stage for stage in STAGES if self.stages.get(stage, {}).get("skipped")]
        self.result["elapsed_s"] = round(self.clock() - self.started, 4)
        return self.result

    def elapsed(self):
        return round(self.clock() - self.started, 4)


_STAGE_PATH = {
    "tcp": "",
    "models": "/v1/models",
    "auth": "/v1/models",
    "chat": "/v1/chat/completions",
    "shape": "/v1/chat/completions",
    "tool_call": "/v1/chat/completions",
    "stream": "/v1/chat/completions",
}
