"""Live per-host progress from ansible-runner events: a rich table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
_STYLE = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "magenta", "running": "cyan"}


class _HostRow:
    def __init__(self) -> None:
        self.task = ""
        self.state = "running"
        self.counts = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0}
        self.started = time.monotonic()
        self.ended: float | None = None


class Progress:
    """Callable event sink. Use as a context manager around the run."""

    def __init__(self, title: str, hosts: list[str], stream: TextIO | None = None, live: bool | None = None):
        self.title = title
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.live_mode = self.console.is_terminal if live is None else live
        self.rows = {h: _HostRow() for h in hosts}
        self.current_task = ""
        self._live: Live | None = None

    def __enter__(self) -> "Progress":
        if self.live_mode:
            self._live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        else:
            self.console.print(f"{self.title}: {len(self.rows)} host(s)")
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(*exc)

    def __call__(self, event: dict) -> None:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        if name == "playbook_on_task_start":
            self.current_task = data.get("task", "")
        elif name in _RESULT_EVENTS and data.get("host"):
            self._record(data["host"], _RESULT_EVENTS[name], data)
        elif name == "playbook_on_stats":
            for row in self.rows.values():
                row.ended = row.ended or time.monotonic()
                if row.state == "running":
                    row.state = "changed" if row.counts["changed"] else "ok"
        if self._live is not None:
            self._live.update(self._table())

    def _record(self, host: str, outcome: str, data: dict) -> None:
        row = self.rows.setdefault(host, _HostRow())
        res = data.get("res") or {}
        if outcome == "ok" and res.get("changed"):
            outcome = "changed"
        if outcome == "failed" and data.get("ignore_errors"):
            outcome = "ok"
        row.counts[outcome] += 1
        row.task = data.get("task", "")
        if outcome in ("failed", "unreachable"):
            row.state = outcome
            row.ended = time.monotonic()
        if not self.live_mode and outcome != "skipped":
            stamp = time.strftime("%H:%M:%S")
            self.console.print(f"{stamp} {host:<24} {outcome:<11} {row.task}")

    def _table(self) -> Table:
        table = Table(title=f"{self.title} — {self.current_task}", expand=False)
        for col in ("host", "state", "task", "ok", "changed", "failed", "time"):
            table.add_column(col, justify="right" if col in ("ok", "changed", "failed", "time") else "left")
        for host, row in sorted(self.rows.items()):
            elapsed = (row.ended or time.monotonic()) - row.started
            style = _STYLE.get(row.state, "")
            table.add_row(
                host,
                f"[{style}]{row.state}[/]" if style else row.state,
                row.task[:60],
                str(row.counts["ok"]),
                str(row.counts["changed"]),
                str(row.counts["failed"] + row.counts["unreachable"]),
                f"{elapsed:5.1f}s",
            )
        return table
