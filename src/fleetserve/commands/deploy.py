"""`fleetserve deploy`: run playbooks/site.yml (preflight to verified endpoint) on every host."""

from __future__ import annotations

import argparse

from fleetserve.commands import _playbook


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("deploy", help="run playbooks/site.yml on the fleet (default: the local lab)")
    _playbook.add_target_arguments(parser)
    parser.set_defaults(func=deploy)


def deploy(args: argparse.Namespace) -> int:
    result = _playbook.run(args, "site.yml", title="deploy", action="deploy")
    return _playbook.finish(args, result)
