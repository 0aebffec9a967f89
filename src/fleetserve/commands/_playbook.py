"""Shared plumbing for subcommands that run one playbook over an inventory."""

from __future__ import annotations

import argparse

from fleetserve import inventory, runner, summary
from fleetserve.progress import Progress


def add_target_arguments(parser: argparse.ArgumentParser, *, tags: bool = True, check: bool = True) -> None:
    parser.add_argument("-i", "--inventory", help="inventory file or directory (default: the local lab)")
    parser.add_argument("-l", "--limit", help="only these hosts or groups (Ansible pattern)")
    if tags:
        parser.add_argument("-t", "--tags", help="only tasks/roles with these tags (comma-separated)")
    if check:
        parser.add_argument("-C", "--check", action="store_true", help="dry run: report what would change")
    parser.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more Ansible output in the artifacts")


def run(args: argparse.Namespace, playbook: str, *, title: str, action: str) -> runner.RunResult:
    """Validate the inventory (fail before anything starts), then run the playbook with live progress."""
    inv = inventory.resolve(args.inventory)
    hosts = inventory.hosts(inv, args.limit)
    with Progress(title, hosts) as progress:
        result = runner.run_playbook(
            playbook,
            inventory=inv,
            limit=args.limit,
            tags=getattr(args, "tags", None),
            check=getattr(args, "check", False),
            sink=progress,
            action=action,
            verbosity=args.verbose,
        )
    return result


def finish(args: argparse.Namespace, result: runner.RunResult, extra: dict | None = None) -> int:
    summary.print_summary(result, as_json=args.json, extra=extra)
    return summary.exit_code(result)
