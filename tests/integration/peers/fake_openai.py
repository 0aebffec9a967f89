"""A stdlib OpenAI-compatible server whose every failure mode the tests control.

It stands in for what a real engine does on a GPU and `transformers serve` cannot show on CPU:
SGLang's 503 warm-up, vLLM's dead engine, MiniMax reasoning shapes (append-think and separated),
tool calls, and the broken cases (hang, 401, wrong model id, malformed JSON, a stalling stream, a
multi-node worker's dummy health server). Runs in a thread of the test process::

    with FakeOpenAI(Behaviour(chat="append_think", api_key="k")) as server:
        server.url  # http://127.0.0.1:181xx

Ports come from 18100-18199 (the range reserved for these tests).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_RANGE = range(18120, 18200)  # 18100-18119 are left to transformers serve
REASONING = "The user asks who won the 2020 World Series. That was the Los Angeles Dodgers."
ANSWER = "The Los Angeles Dodgers won the 2020 World Series."
TOOL_ARGS = {"location": "San Francisco", "unit": "celsius"}
FINAL_TOOL_ANSWER = "It is 21 degrees and clear in San Francisco."


@dataclass
class Behaviour:
    """What the server does. Defaults: a healthy plain model named ``fake-org/model``."""

    served: list = field(default_factory=lambda: ["fake-org/model"])
    api_key: str | None = None
    # health: ok | warmup (503 until healthy_after s past the first /health probe, so a slow client
    # start cannot skip the warm-up) | dead (503 forever) | hang | dummy (multi-node
    # worker: /health 200, no /v1 routes) | missing (404)
    health: str = "ok"
    healthy_after: float = 0.0
    models: str = "ok"  # ok | malformed | empty_object
    # chat: plain | append_think | separate | empty | malformed | no_choices | hang | error500
    chat: str = "plain"
    tools: str = "ok"  # ok | missing | wrong_name | bad_args | missing_required
    stream: str = "done"  # done | no_done | stall | malformed | empty
    stall_after_chunks: int = 2


def free_port() -> int:
    for port in PORT_RANGE:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in %s-%s" % (PORT_RANGE.start, PORT_RANGE.stop - 1))


def _message(behaviour: Behaviour, tools: bool, after_tool: bool) -> dict:
    think = "<think>%s</think>\n\n" % REASONING
    if after_tool:
        content = FINAL_TOOL_ANSWER
        return {"role": "assistant", "content": think + content if behaviour.chat == "append_think" else content}
    if behaviour.chat == "empty":
        return {"role": "assistant", "content": ""}
    if tools and behaviour.tools != "missing":
        name = "get_time" if behaviour.tools == "wrong_name" else "get_weather"
        args = {
            "bad_args": "location=San Francisco",
            "missing_required": json.dumps({"unit": "celsius"}),
        }.get(behaviour.tools, json.dumps(TOOL_ARGS))
        message = {
            "role": "assistant",
            "content": think if behaviour.chat == "append_think" else None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}],
        }
        if behaviour.chat == "separate":
            message["reasoning_content"] = REASONING
        return message
    if behaviour.chat == "append_think":
        return {"role": "assistant", "content": think + ANSWER}
    if behaviour.chat == "separate":
        return {"role": "assistant", "content": ANSWER, "reasoning_content": REASONING}
    return {"role": "assistant", "content": ANSWER}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    # -- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, payload, raw: str | None = None):
        body = (raw if raw is not None else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hang(self):
        self.server.stopping.wait()

    def _authorized(self) -> bool:
        key = self.server.behaviour.api_key
        return key is None or self.headers.get("Authorization") == "Bearer " + key

    def _record(self, body=None):
        self.server.requests.append(
            {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self):
        self._record()
        b = self.server.behaviour
        if self.path == "/health":
            return self._health(b)
        if b.health == "dummy":
            return self._send(404, {"detail": "Not Found"})
        if self.path == "/v1/models":
            if not self._authorized():
                return self._send(401, {"error": "Unauthorized"})
            if b.models == "malformed":
                return self._send(200, None, raw="<html>gateway</html>")
            if b.models == "empty_object":
                return self._send(200, {"object": "list"})
            return self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in b.served]})
        return self._send(404, {"detail": "Not Found"})

    def _health(self, b: Behaviour):
        if b.health == "hang":
            return self._hang()
        if b.health == "missing":
            return self._send(404, {"detail": "Not Found"})
        if b.health == "dead":
            return self._send(503, {"error": "EngineDeadError"})
        if self.server.first_probe_at is None:
            self.server.first_probe_at = time.monotonic()
        if b.health == "warmup" and time.monotonic() < self.server.first_probe_at + b.healthy_after:
            return self._send(503, {"status": "starting"})
        if self.server.first_healthy_at is None:
            self.server.first_healthy_at = time.monotonic()
        return self._send(200, {"status": "ok"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self._record(body)
        b = self.server.behaviour
        if self.path != "/v1/chat/completions" or b.health == "dummy":
            return self._send(404, {"detail": "Not Found"})
        if not self._authorized():
            return self._send(401, {"error": "Unauthorized"})
        if not isinstance(body, dict) or body.get("model") not in b.served:
            return self._send(400, {"detail": "model %r is not served" % (body or {}).get("model")})
        if b.chat == "hang":
            return self._hang()
        if b.chat == "error500":
            return self._send(500, {"error": "CUDA error: an illegal memory access was encountered"})
        if b.chat == "malformed":
            return self._send(200, None, raw='{"choices": [')
        if b.chat == "no_choices":
            return self._send(200, {"id": "x", "object": "chat.completion", "choices": []})
        after_tool = any(m.get("role") == "tool" for m in body.get("messages", []))
        message = _message(b, bool(body.get("tools")), after_tool)
        if body.get("stream"):
            return self._stream(b, message, body)
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return self._send(
            200,
            {
                "id": "chatcmpl-" + uuid.uuid4().hex,
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
            },
        )

    def _stream(self, b: Behaviour, message: dict, body: dict):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        words = [] if b.stream == "empty" else (message.get("content") or "").split(" ")

        def event(delta=None, finish=None, usage=None):
            chunk = {"id": "c", "object": "chat.completion.chunk", "model": body["model"], "choices": []}
            if delta is not None or finish is not None:
                chunk["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
            if usage is not None:
                chunk["usage"] = usage
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()

        event({"role": "assistant"})
        for i, word in enumerate(words):
            if b.stream == "stall" and i == b.stall_after_chunks:
                return self._hang()
            if b.stream == "malformed" and i == 1:
                self.wfile.write(b"data: {not json\n\n")
                self.wfile.flush()
                return
            event({"content": word if i == 0 else " " + word})
            time.sleep(0.01)
        event(finish="stop")
        event(usage={"prompt_tokens": 20, "completion_tokens": len(words), "total_tokens": 20 + len(words)})
        if b.stream != "no_done":
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeOpenAI:
    """Context manager running the fake server in a thread."""

    def __init__(self, behaviour: Behaviour | None = None, port: int | None = None, tls=None):
        self.behaviour = behaviour or Behaviour()
        self.port = port or free_port()
        self.tls = tls  # an ssl.SSLContext (server side): serve https
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    @property
    def requests(self) -> list:
        return self._server.requests if self._server else []

    @property
    def first_probe_at(self):
        return self._server.first_probe_at if self._server else None

    @property
    def first_healthy_at(self):
        return self._server.first_healthy_at if self._server else None

    def start(self) -> FakeOpenAI:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.behaviour = self.behaviour
        server.started = time.monotonic()
        server.first_healthy_at = None
        server.first_probe_at = None
        server.requests = []
        server.stopping = threading.Event()
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
