"""`fleetserve status`: what every host serves right now (playbooks/status.yml, read-only).

Per engine host: engine, installed version, unit state, /health, served model, whether a router
routes to it, and its load from the engine's /metrics (requests running and waiting, KV cache usage);
per router: unit, /health and its worker count. The numbers come from the
``fleetserve_status`` fact the playbook publishes per host.
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

COLUMNS = ("host", "role", "engine", "version", "unit", "health", "model", "router", "running", "waiting", "kv")
# service_facts reports a started unit as "running".
_HEALTHY = {"unit": "running", "health": "200"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "status",
        help="show what every host serves now: engine, version, unit, /health, model, router membership, load",
        description="Run playbooks/status.yml (read-only) and print one row per host.",
    )
    _playbook.add_target_arguments(parser, tags=False, check=False)
    parser.set_defaults(func=status)


def status(args: argparse.Namespace) -> int:
    result = _playbook.run(args, "status.yml", title="status", action="status")
    reports = host_reports(result)
    if args.json:
        payload = result.as_dict()
        payload["status"] = reports
        print(json.dumps(payload, indent=2, default=str))
    else:
        print_table(reports, result)
    return summary.exit_code(result)


def membership(reports: dict[str, dict]) -> dict[str, list[str]]:
    """For each worker, the routers whose worker list holds its URL (address or name, and port)."""
    routers = {name: r.get("workers") or [] for name, r in reports.items() if r.get("role") == "router"}
    found: dict[str, list[str]] = {}
    for name, report in reports.items():
        if report.get("role") != "worker":
            continue
        port = report.get("port")
        urls = {f"://{addr}:{port}" for addr in (report.get("address"), name) if addr}
        found[name] = sorted(r for r, workers in routers.items() if any(u in str(w) for w in workers for u in urls))
    return found


def host_reports(result: runner.RunResult) -> dict[str, dict]:
    """Each host's fleetserve_status plus its router membership; hosts that never published one
    (unreachable, failed in preflight) get a stub carrying their first failure."""
    facts = result.host_facts("fleetserve_status")
    reports: dict[str, dict] = {}
    for name in sorted(set(result.hosts) | set(facts)):
        report = dict(facts.get(name) or {})
        if not report:
            host = result.hosts.get(name)
            failure = host.failures[0] if host and host.failures else {}
            report = {
                "role": None,
                "state": host.status if host else "failed",
                "msg": failure.get("msg") or "status.yml did not reach this host",
            }
        reports[name] = report
    for name, routers in membership(reports).items():
        reports[name]["routers"] = routers
    return reports


def load_cells(report: dict) -> list[str]:
    """running, waiting and KV usage (percent) from the engine's metrics; "-" where it reported none."""
    load = report.get("load") or {}

    def count(key):
        return "-" if load.get(key) is None else str(load[key])

    kv = load.get("kv_usage")
    return [count("running"), count("waiting"), "-" if kv is None else f"{float(kv) * 100:.0f}%"]


def rows(reports: dict[str, dict]) -> list[list[str]]:
    out = []
    for name, r in reports.items():
        if r.get("role") is None:
            out.append([name, "-", "-", "-", "-", "-", "-", r.get("state", "failed"), "-", "-", "-"])
            continue
        if r["role"] == "router":
            router = f"{len(r.get('workers') or [])} worker(s)"
        else:
            router = ", ".join(r.get("routers") or []) or "-"
        out.append(
            [
                name,
                r["role"],
                r.get("engine") or "-",
                r.get("version") or "-",
                str(r.get("unit") or "-"),
                str(r.get("health")),
                ", ".join(r.get("models") or []) or "-",
                router,
                *load_cells(r),
            ]
        )
    return out


def print_table(reports: dict[str, dict], result: runner.RunResult, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    console = Console(file=out, highlight=False, width=None if out.isatty() else 180)
    table = Table(title=f"status: {result.status} in {result.seconds}s")
    for col in COLUMNS:
        table.add_column(col)
    for row in rows(reports):
        cells = [escape(cell) for cell in row]
        for col, want in _HEALTHY.items():
            i = COLUMNS.index(col)
            if row[1] != "-":
                cells[i] = f"[{'green' if row[i] == want else 'bold red'}]{cells[i]}[/]"
        table.add_row(*cells)
    console.print(table)
    for name, report in reports.items():
        if report.get("role") is None:
            console.print(f"[red]{escape(name)}[/]: {escape(report.get('msg') or '')}")
    console.print(f"artifacts: {result.artifact_dir}")
