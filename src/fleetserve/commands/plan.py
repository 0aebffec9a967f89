"""`fleetserve plan`: run playbooks/preflight.yml (changes nothing) and print each host's serving plan."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from rich.console import Console
from rich.table import Table

from fleetserve import runner, summary
from fleetserve.commands import _playbook

COLUMNS = ("host", "model", "engine", "GPUs", "TP/EP/DP", "node", "mem", "max context", "KV tokens", "port")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plan", help="show how each host would serve its model (runs the read-only preflight play)")
    _playbook.add_target_arguments(parser, tags=False, check=False)
    parser.set_defaults(func=plan)


def plan(args: argparse.Namespace) -> int:
    result = _playbook.run(args, "preflight.yml", title="plan", action="plan")
    plans = result.host_facts("preflight_plan")
    failures = {name: host.failures[0]["msg"] for name, host in result.hosts.items() if host.failures}
    if args.json:
        print(json.dumps({**result.as_dict(), "plans": plans, "refusals": failures}, indent=2, default=str))
    else:
        print_plans(plans, failures, result)
    return summary.exit_code(result)


def row(host: str, p: dict) -> list[str]:
    return [
        host,
        p["model"],
        f"{p['engine']} {p['engine_version']}",
        f"{p.get('gpu_count', '?')}x {p.get('gpu_name', '?')}",
        f"{p['tensor_parallel_size']}/{p['expert_parallel_size']}/{p['data_parallel_size']}",
        node(p),
        str(p["mem_fraction"]),
        f"{p['max_context']:,}",
        f"{p['kv_capacity_tokens']:,}",
        str(p["port"]),
    ]


def node(p: dict) -> str:
    """'-' for a single-node engine; 'rank/nnodes' (node 0 serves the API) for one spanning hosts."""
    nnodes = int(p.get("nnodes") or 1)
    return "-" if nnodes < 2 else f"{p.get('node_rank', '?')}/{nnodes}"


def print_plans(plans: dict, failures: dict, result: runner.RunResult, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    console = Console(file=out, highlight=False, width=None if out.isatty() else 160)
    table = Table(title=f"serving plans ({len(plans)} of {len(result.hosts)} hosts)")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in ("max context", "KV tokens", "port") else "left")
    for host in sorted(plans):
        table.add_row(*row(host, plans[host]))
    console.print(table)
    for host in sorted(failures):
        # An unreachable host was never planned: saying "refused" would send the user to the wrong fix.
        verdict = "unreachable" if result.hosts[host].status == "unreachable" else "refused"
        console.print(f"[red]{host}[/]: {verdict}: {failures[host]}")
    for host in sorted(set(result.hosts) - set(plans) - set(failures)):
        console.print(f"[magenta]{host}[/]: no plan ({result.hosts[host].status})")
    console.print(f"artifacts: {result.artifact_dir}")
