"""The simulator's HTTP server (asyncio, stdlib only): readiness, auth and the OpenAI routes.

Readiness mirrors the real engines:
- vLLM binds no socket until the model is "loaded" (``startup_s``), then /health answers 200;
- SGLang binds at once and answers /health 503 until warm-up ends; ranks >= 1 of a multi-node job run
  only a dummy health server that always answers 200 (engine-facts 3.3).

Shutdown mirrors them too: SIGTERM closes the listener, lets the requests in flight finish (at most
``grace_s``), then exits 0, so a host drained from the router loses no request when its engine stops.
``/metrics`` reports the requests in flight (``sglang:num_running_reqs``, ``vllm:num_requests_running``),
which is what the rollout polls before it stops an engine.

SGLang Model Gateway (smg 1.13) registers a worker by probing /health, then tells the engines apart:
- SGLang: /server_info (falling back to /get_server_info) and /model_info (/get_model_info), answered in
  SGLang 0.5.23's shapes;
- vLLM: /v1/models (the served name, root and max_model_len become the worker's labels) and /version
  (runtime_type "vllm"); its load monitor then asks /loads and /v1/loads, which vLLM 0.26.0 does not
  serve (404, FastAPI's body), and reads the vllm:* gauges of /metrics. Every vLLM answer has the
  status, content type and keys of the recordings in tests/fixtures/real-vllm-0.26.0
  (tests/engine_sim/test_sim_matches_real_vllm.py and test_gateway_probes.py check them).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import sys
import time
import uuid

from fleetserve_engine_sim import minimax
from fleetserve_engine_sim.cli import SimConfig, parse

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}


def log(msg):
    print(f"engine-sim: {msg}", file=sys.stderr, flush=True)


class Sim:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.started = time.monotonic()
        self.requests = 0
        self.in_flight = 0
        self.stopping = False

    # --- readiness and auth -------------------------------------------------------------------
    def warm(self):
        if self.cfg.failure == "hang":
            return False
        return time.monotonic() - self.started >= self.cfg.startup_s

    def authorised(self, path, headers):
        if not self.cfg.api_keys:
            return True
        if self.cfg.engine == "vllm":
            protected = path.startswith("/v1")
        else:  # SGLang guards every route except health, readiness and metrics
            protected = not path.startswith(("/health", "/metrics", "/ready"))
        if not protected:
            return True
        auth = headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[len("Bearer ") :] in self.cfg.api_keys

    # --- routes -------------------------------------------------------------------------------
    def route(self, method, path, headers, body):
        cfg = self.cfg
        if cfg.engine == "sglang" and cfg.node_rank > 0:
            if path in ("/health", "/health_generate"):
                return 200, {}
            return 404, {"detail": "Not Found"}
        if not self.authorised(path, headers):
            return 401, {"error": "Unauthorized"}
        if path in ("/health", "/health_generate", "/ping") and cfg.engine == "vllm":
            # vLLM answers a bare 200 (no body, no content type); real-vllm-0.26.0 recordings
            return (200, None) if self.warm() and not self.stopping else (503, None)
        if path in ("/health", "/health_generate"):
            return (200, {}) if self.warm() and not self.stopping else (503, {})
        if path == "/ready" and cfg.engine == "sglang":
            return (200, {"status": "ready"}) if self.warm() else (503, {"status": "starting"})
        if path == "/version" and cfg.engine == "vllm":
            return 200, {"version": cfg.version}
        if path == "/metrics" and cfg.enable_metrics:
            return 200, self.metrics()
        if cfg.engine == "sglang" and not self.warm():
            return 503, {"error": "server is warming up"}
        if path == "/v1/models" and method == "GET":
            return 200, self.models()
        if path in ("/get_model_info", "/model_info") and cfg.engine == "sglang":
            return 200, {"model_path": cfg.model, "served_model_name": cfg.served_model_name, "is_generation": True}
        if path in ("/server_info", "/get_server_info") and cfg.engine == "sglang":
            return 200, self.server_info()
        if path == "/v1/chat/completions" and method == "POST":
            try:
                request = json.loads(body or b"{}")
            except ValueError as exc:
                return 400, self.error(f"invalid JSON body: {exc}", 400)
            self.requests += 1
            return self.chat(request)
        return 404, {"detail": "Not Found"}

    def server_info(self):
        cfg = self.cfg
        # SGLang returns its ServerArgs flattened plus the runtime state; the gateway reads these keys.
        return {
            "model_path": cfg.model,
            "served_model_name": cfg.served_model_name,
            "tokenizer_path": cfg.model,
            "host": cfg.host,
            "port": cfg.port,
            "tp_size": 1,
            "dp_size": 1,
            "context_length": cfg.max_model_len,
            "tool_call_parser": cfg.tool_call_parser,
            "reasoning_parser": cfg.reasoning_parser,
            "version": cfg.version,
            "internal_states": [{"last_gen_throughput": 0.0, "num_running_reqs": self.in_flight}],
        }

    def error(self, message, code, param=None):
        kind = {400: "BadRequestError", 404: "NotFoundError"}.get(code, "Error")
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}

    def models(self):
        cfg = self.cfg
        owner = "vllm" if cfg.engine == "vllm" else "sglang"
        created = int(time.time())
        card = {"id": cfg.served_model_name, "object": "model", "created": created, "owned_by": owner}
        card["root"] = cfg.model
        if cfg.engine == "vllm":
            card["parent"] = None
        card["max_model_len"] = cfg.max_model_len
        if cfg.engine == "vllm":
            card["permission"] = [
                {
                    "id": "modelperm-" + uuid.uuid4().hex[:16],
                    "object": "model_permission",
                    "created": created,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ]
        return {"object": "list", "data": [card]}

    def metrics(self):
        if self.cfg.engine == "vllm":
            # Names, types and labels as vLLM 0.26.0 writes them (tests/fixtures/real-vllm-0.26.0).
            labels = f'engine="0",model_name="{self.cfg.served_model_name}"'
            return (
                "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
                "# TYPE vllm:num_requests_running gauge\n"
                f"vllm:num_requests_running{{{labels}}} {float(self.in_flight)}\n"
                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
                "# TYPE vllm:num_requests_waiting gauge\n"
                f"vllm:num_requests_waiting{{{labels}}} 0.0\n"
                "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
                "# TYPE vllm:kv_cache_usage_perc gauge\n"
                f"vllm:kv_cache_usage_perc{{{labels}}} 0.0\n"
                "# HELP vllm:request_success_total Count of successfully processed requests.\n"
                "# TYPE vllm:request_success_total counter\n"
                f'vllm:request_success_total{{{labels},finished_reason="stop"}} {float(self.requests)}\n'
                "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
                "# TYPE vllm:prefix_cache_queries_total counter\n"
                f"vllm:prefix_cache_queries_total{{{labels}}} {12.0 * self.requests}\n"
                "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.\n"
                "# TYPE vllm:prefix_cache_hits_total counter\n"
                f"vllm:prefix_cache_hits_total{{{labels}}} 0.0\n"
                "# HELP vllm:cache_config_info Information of the LLMCacheConfig\n"
                "# TYPE vllm:cache_config_info gauge\n"
                f'vllm:cache_config_info{{block_size="16",cache_dtype="auto",enable_prefix_caching="True",'
                f'engine="0",num_gpu_blocks="{max(1, self.cfg.max_model_len // 16)}"}} 1.0\n'
            )
        return (
            "# HELP sglang:num_running_reqs The number of running requests.\n"
            "# TYPE sglang:num_running_reqs gauge\n"
            f'sglang:num_running_reqs{{model_name="{self.cfg.served_model_name}"}} {float(self.in_flight)}\n'
            "# HELP sglang:num_queue_reqs The number of requests in the waiting queue.\n"
            "# TYPE sglang:num_queue_reqs gauge\n"
            f'sglang:num_queue_reqs{{model_name="{self.cfg.served_model_name}"}} 0.0\n'
            "# HELP sglang:token_usage The token usage.\n"
            "# TYPE sglang:token_usage gauge\n"
            f'sglang:token_usage{{model_name="{self.cfg.served_model_name}"}} 0.0\n'
        )

    def chat(self, request):
        cfg = self.cfg
        if cfg.engine == "vllm" and request.get("model") not in (None, cfg.served_model_name):
            return 404, self.error(f"The model `{request.get('model')}` does not exist.", 404, param="model")
        max_tokens = request.get("max_tokens")
        if cfg.engine == "vllm" and isinstance(max_tokens, int) and max_tokens > cfg.max_model_len:
            return 400, self.error(
                f"max_tokens={max_tokens} cannot be greater than max_model_len=max_total_tokens={cfg.max_model_len}. "
                f"Please request fewer output tokens. (parameter=max_tokens, value={max_tokens})",
                400,
                param="max_tokens",
            )
        tools = request.get("tools") or []
        if (
            tools
            and request.get("tool_choice", "auto") == "auto"
            and not (cfg.auto_tool_choice and cfg.tool_call_parser)
        ):
            return 400, self.error(
                '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', 400
            )
        raw = minimax.raw_output(request, cfg.tool_call_parser, cfg.served_model_name)
        content, reasoning, calls, finish = minimax.parse_output(
            raw, request, cfg.tool_call_parser, cfg.reasoning_parser
        )
        usage = {"prompt_tokens": 12, "completion_tokens": len(raw.split()), "total_tokens": 12 + len(raw.split())}
        base = {"id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()), "model": cfg.served_model_name}
        vllm = cfg.engine == "vllm"
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            return 200, list(
                self.stream(
                    base, content, reasoning, calls, finish, usage if include_usage else None, vllm, cfg.version
                )
            )
        if vllm:
            return 200, self.vllm_completion(base, content, reasoning, calls, finish, usage, cfg.version)
        message = {"role": "assistant", "content": content, "reasoning_content": reasoning, "tool_calls": calls}
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        return 200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage}

    @staticmethod
    def vllm_completion(base, content, reasoning, calls, finish, usage, version):
        """vLLM 0.26.0's shape: separated reasoning in `reasoning` (no `reasoning_content`), tool_calls only
        when there are some, and its null extras (tests/fixtures/real-vllm-0.26.0/recordings.json)."""
        message = {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
        }
        if calls:
            message["tool_calls"] = calls
        message["reasoning"] = reasoning
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish,
            "stop_reason": None,
            "token_ids": None,
            "routed_experts": None,
        }
        return {
            **base,
            "object": "chat.completion",
            "choices": [choice],
            "service_tier": None,
            "system_fingerprint": f"vllm-{version}-enginesim",
            "usage": dict(usage, prompt_tokens_details=None),
            "prompt_logprobs": None,
            "prompt_token_ids": None,
            "prompt_text": None,
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "metrics": None,
        }

    @staticmethod
    def stream(base, content, reasoning, calls, finish, usage, vllm=False, version=""):
        reasoning_key = "reasoning" if vllm else "reasoning_content"

        def chunk(delta, finish_reason=None, **extra):
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            if vllm:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                if finish_reason:
                    choice["stop_reason"] = None
                choice["token_ids"] = None
            return {**base, "object": "chat.completion.chunk", "choices": [choice], **extra}

        if vllm:  # the first chunk carries the prompt fields and its choice no token_ids
            first = chunk({"role": "assistant", "content": ""})
            first["choices"][0].pop("token_ids")
            yield {**first, "prompt_token_ids": None, "prompt_text": None}
        else:
            yield chunk({"role": "assistant", "content": ""})
        for piece in _pieces(reasoning):
            yield chunk({reasoning_key: piece})
        for piece in _pieces(content):
            yield chunk({"content": piece})
        for i, call in enumerate(calls):
            yield chunk({"tool_calls": [{"index": i, **call}]})
        yield chunk({"content": ""} if vllm else {}, finish)
        if usage:
            last = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            if vllm:
                last["system_fingerprint"] = f"vllm-{version}-enginesim"
            yield last


def _pieces(text, size=16):
    return [text[i : i + size] for i in range(0, len(text or ""), size)]


async def _read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return method, target.split("?", 1)[0], headers, body


async def _handle(sim, reader, writer):
    counted = False
    try:
        method, path, headers, body = await _read_request(reader)
        counted = path.startswith("/v1/") and method == "POST"  # generations only, not the probes
        sim.in_flight += counted
        status, payload = sim.route(method, path, headers, body)
        if sim.cfg.access_log:
            log(f"{method} {path} {status}")
        if path == "/v1/chat/completions" and status == 200 and sim.cfg.latency_s > 0:
            await asyncio.sleep(sim.cfg.latency_s)  # a generation takes time: what a drain must wait for
        vllm = sim.cfg.engine == "vllm"
        # vLLM (FastAPI) writes compact JSON and names the charset of streams and metrics.
        dump = (lambda obj: json.dumps(obj, separators=(",", ":"))) if vllm else json.dumps
        if isinstance(payload, list):  # an SSE stream
            sse = "text/event-stream; charset=utf-8" if vllm else "text/event-stream"
            writer.write(f"HTTP/1.1 {status} OK\r\nContent-Type: {sse}\r\nConnection: close\r\n\r\n".encode())
            for event in payload:
                writer.write(b"data: " + dump(event).encode() + b"\n\n")
                await writer.drain()
            writer.write(b"data: [DONE]\n\n")
        else:
            is_text = isinstance(payload, str)
            if payload is None:  # vLLM's bare /health and /ping: no body, no content type
                data, ctype = b"", None
            elif is_text:
                data = payload.encode()
                ctype = "text/plain; version=1.0.0; charset=utf-8" if vllm else "text/plain; version=0.0.4"
            else:
                data, ctype = dump(payload).encode(), "application/json"
            head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            head += f"Content-Type: {ctype}\r\n" if ctype else ""
            writer.write(f"{head}Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        if counted:
            sim.in_flight -= 1
        writer.close()


async def _serve(cfg):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # PID 1 in a container ignores SIGTERM without a handler
        loop.add_signal_handler(sig, stop.set)
    sim = Sim(cfg)
    if cfg.engine == "vllm":
        log(f"loading model {cfg.model} (simulated {cfg.startup_s}s)")
        if cfg.failure == "hang":
            await stop.wait()
            return 0
        try:
            await asyncio.wait_for(stop.wait(), cfg.startup_s)
            return 0
        except asyncio.TimeoutError:
            pass
    if cfg.failure == "crash":
        if cfg.engine == "sglang":
            await asyncio.sleep(cfg.startup_s)
        log("RuntimeError: simulated crash during start-up (FLEETSERVE_SIM_FAILURE=crash)")
        return 1
    server = await asyncio.start_server(lambda r, w: _handle(sim, r, w), cfg.host, cfg.port, ssl=_tls(cfg))
    sim.started = time.monotonic() if cfg.engine == "sglang" else sim.started - cfg.startup_s
    tls = " over TLS" if cfg.ssl_certfile else ""
    log(f"{cfg.engine} {cfg.version} serving {cfg.served_model_name!r} on {cfg.host}:{cfg.port}{tls}")
    async with server:
        if cfg.failure == "crash-after-ready":
            try:
                await asyncio.wait_for(stop.wait(), cfg.startup_s + cfg.crash_after_s)
                return 0
            except asyncio.TimeoutError:
                log("RuntimeError: simulated crash after start-up (FLEETSERVE_SIM_FAILURE=crash-after-ready)")
                return 1
        await stop.wait()
        await _drain(sim, server)
    return 0


def _tls(cfg):
    """--ssl-certfile/--ssl-keyfile, as uvicorn reads them in both engines: HTTPS with that certificate."""
    if not (cfg.ssl_certfile or cfg.ssl_keyfile):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cfg.ssl_certfile, cfg.ssl_keyfile)
    return context


async def _drain(sim, server):
    """Stop accepting, then wait (at most grace_s) for the requests in flight, as the engines do."""
    sim.stopping = True
    server.close()
    log(f"shutting down: waiting for {sim.in_flight} request(s) in flight")
    deadline = time.monotonic() + sim.cfg.grace_s
    while sim.in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    log("shut down" if sim.in_flight == 0 else f"shut down with {sim.in_flight} request(s) cut off")


def main(engine, argv):
    try:
        cfg = parse(engine, argv)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if cfg.model.startswith("/") and not os.path.isdir(cfg.model):
        log(f"ValueError: model path {cfg.model} does not exist (is the weights directory mounted?)")
        return 1
    return asyncio.run(_serve(cfg))
