"""`fleetserve verify`: run playbooks/verify.yml and print, per host, how long each stage took.

The numbers come from the ``verify_report`` fact the verify role publishes (the module's own result
is hidden by no_log because its request carries the API key).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetserve import runner, summary
from fleetserve.commands import _playbook

STAGES = ("tcp", "health", "models", "auth", "chat", "shape", "tool_call", "stream")
_STYLE = {"ok": "green", "failed": "bold red", "skipped": "dim", "unreachable": "bold magenta"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify",
        help="prove every host's endpoint can serve (playbooks/verify.yml) and show stage timings",
        description="Wait for each endpoint under the plan's deadline, then check health, model listing, "
        "API key enforcement, a chat reply and its reasoning shape, a tool call and a stream.",
    )
    _playbook.add_target_arguments(parser, tags=False, check=False)
    parser.set_defaults(func=verify)


def verify(args: argparse.Namespace) -> int:
    result = _playbook.run(args, "verify.yml", title="verify", action="verify")
    reports = host_reports(result)
    if args.json:
        payload = result.as_dict()
        payload["verify"] = reports
        print(json.dumps(payload, indent=2, default=str))
    else:
        print_table(reports, result)
    return summary.exit_code(result) if all(r["status"] != "failed" for r in reports.values()) else 1


def host_reports(result: runner.RunResult) -> dict[str, dict]:
    """Each host's verify_report; hosts that never got one (unreachable, failed earlier) get a stub."""
    facts = result.host_facts("verify_report")
    reports = {}
    for name in sorted(set(result.hosts) | set(facts)):
        report = facts.get(name)
        if report is None:
            host = result.hosts.get(name)
            status = host.status if host else "failed"
            failure = host.failures[0] if host and host.failures else {}
            report = {
                "status": "unreachable" if status == "unreachable" else "failed",
                "reason": "not_verified",
                "msg": failure.get("msg") or "the verify role did not run on this host",
                "stage": None,
                "stages": {},
            }
        reports[name] = report
    return reports


def _seconds(value) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def rows(reports: dict[str, dict]) -> list[list[str]]:
    """One row per host: status, each stage's seconds, TTFT, tokens/s, and the failure reason."""
    out = []
    for name, report in reports.items():
        stages = report.get("stages") or {}
        stream = report.get("stream") or {}
        failed_at = report.get("stage")
        cells = []
        for stage in STAGES:
            if stage in stages:
                cells.append(_seconds(stages[stage].get("elapsed_s")))
            else:
                cells.append("FAIL" if stage == failed_at else "-")
        reason = report.get("reason") or ""
        out.append(
            [
                name,
                report.get("status", "?"),
                *cells,
                _seconds(stream.get("ttft_s")),
                "-" if stream.get("tokens_per_s") is None else f"{stream['tokens_per_s']:.1f}",
                _seconds(report.get("elapsed_s")),
                reason,
            ]
        )
    return out


def print_table(reports: dict[str, dict], result: runner.RunResult, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    console = Console(file=out, highlight=False, width=None if out.isatty() else 180)
    table = Table(title=f"verify: {result.status} in {result.seconds}s (seconds per stage)")
    for col in ("host", "status", *STAGES, "ttft", "tok/s", "total", "reason"):
        table.add_column(col, justify="left" if col in ("host", "status", "reason") else "right")
    for row in rows(reports):
        style = _STYLE.get(row[1], "")
        row = [escape(cell) for cell in row]
        row[1] = f"[{style}]{row[1]}[/]" if style else row[1]
        table.add_row(*row)
    console.print(table)
    for name, report in reports.items():
        if report.get("status") in ("failed", "unreachable"):
            console.print(f"[red]{escape(name)}[/]: {escape(report.get('msg') or '')}")
        elif report.get("status") == "skipped":
            console.print(f"{escape(name)}: {escape(report.get('msg') or '')}")
    console.print(f"artifacts: {result.artifact_dir}")
