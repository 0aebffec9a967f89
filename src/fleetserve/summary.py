"""The end of every run: a per-host table (or JSON) and the exit code."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from rich.console import Console
from rich.table import Table

from fleetserve.runner import RunResult

_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold magenta"}


def exit_code(result: RunResult) -> int:
    """0 when every host finished without failure; 1 when any host failed or was unreachable."""
    return 0 if result.succeeded else 1


def print_summary(result: RunResult, *, as_json: bool, stream: TextIO | None = None, extra: dict | None = None) -> None:
    if as_json:
        payload = result.as_dict()
        payload.update(extra or {})
        print(json.dumps(payload, indent=2, sort_keys=False, default=str), file=stream or sys.stdout)
        return
    console = Console(file=stream or sys.stdout, highlight=False, width=None if (stream or sys.stdout).isatty() else 160)
    table = Table(title=f"{result.playbook}: {result.status} in {result.seconds}s")
    for col in ("host", "status", "ok", "changed", "failed", "unreachable", "skipped", "time"):
        table.add_column(col, justify="left" if col in ("host", "status") else "right")
    for host in sorted(result.hosts.values(), key=lambda h: h.name):
        style = _STYLE.get(host.status, "")
        table.add_row(
            host.name,
            f"[{style}]{host.status}[/]",
            str(host.ok),
            str(host.changed),
            str(host.failed),
            str(host.unreachable),
            str(host.skipped),
            f"{host.seconds}s",
        )
    console.print(table)
    for host in sorted(result.hosts.values(), key=lambda h: h.name):
        for failure in host.failures[:3]:
            console.print(f"[red]{host.name}[/]: {failure['task']}: {failure['msg']}")
    console.print(f"artifacts: {result.artifact_dir}")
