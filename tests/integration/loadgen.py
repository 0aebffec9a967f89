"""A small load generator for the lab: threads sending chat completions through the router.

Half the requests stream (SSE, read to ``data: [DONE]``), half do not. Every request is recorded with
its start and end time and, if it failed, why: a non-200 status, a broken or incomplete stream, a
reply without an assistant message, or a transport error. Stdlib only (the bench uses it too).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Self


@dataclass
class Outcome:
    started: float
    ended: float
    stream: bool
    error: str | None = None


@dataclass
class Load:
    url: str
    api_key: str
    model: str
    threads: int = 4
    timeout: float = 30.0
    # Pause between a thread's requests: the simulator answers in milliseconds, and unpaced threads
    # would take the controller's cores from the rollout they are meant to watch.
    pause: float = 0.2
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Self:
        for i in range(self.threads):
            worker = threading.Thread(target=self._loop, args=(i,), daemon=True, name=f"load-{i}")
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)

    @property
    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.error]

    def summary(self) -> dict:
        with self._lock:
            done = list(self.outcomes)
        return {
            "requests": len(done),
            "failed": sum(1 for o in done if o.error),
            "streamed": sum(1 for o in done if o.stream),
            "errors": sorted({o.error for o in done if o.error})[:5],
        }

    def _loop(self, index: int) -> None:
        stream = bool(index % 2)
        while not self._stop.is_set():
            started = time.time()
            error = self.one(stream)
            with self._lock:
                self.outcomes.append(Outcome(started, time.time(), stream, error))
            stream = not stream
            self._stop.wait(self.pause)

    def one(self, stream: bool) -> str | None:
        """One request; None when it succeeded, else the reason it failed."""
        body = {
            "model": self.model,
            "max_tokens": 16,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello from the lab."}],
        }
        request = urllib.request.Request(
            f"{self.url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if not stream:
                    reply = json.load(response)
                    if reply["choices"][0]["message"]["role"] != "assistant":
                        return "reply without an assistant message"
                    return None
                saw_done = False
                for raw in response:
                    line = raw.decode().strip()
                    if line == "data: [DONE]":
                        saw_done = True
                    elif line.startswith("data: "):
                        json.loads(line[6:])
                return None if saw_done else "stream ended without [DONE]"
        except urllib.error.HTTPError as err:
            return f"HTTP {err.code}"
        except (OSError, ValueError, KeyError) as err:
            return f"{type(err).__name__}: {err}"[:200]
