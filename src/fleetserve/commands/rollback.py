"""`fleetserve rollback`: put the named hosts back on their previous engine (playbooks/rollback.yml).

A manual rollback touches only the hosts it is told about, so --limit is required: a fleet-wide
rollback by accident would take every host out of the router in turn.
"""

from __future__ import annotations

import argparse

from fleetserve.commands import _playbook
from fleetserve.commands.rollout import _run, add_extra_vars_argument, finish, parse_extra_vars
from fleetserve.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "rollback",
        help="return the --limit hosts to their previous engine, leaving and rejoining the router",
        description="Run playbooks/rollback.yml on the hosts named by --limit (required).",
    )
    _playbook.add_target_arguments(parser, tags=False, check=False)
    add_extra_vars_argument(parser)
    parser.set_defaults(func=rollback)


def rollback(args: argparse.Namespace) -> int:
    if not args.limit:
        raise UserError(
            "rollback needs --limit: it acts only on the hosts you name",
            "pass --limit HOST[,HOST...] (or a group), e.g. fleetserve rollback --limit gpu-03",
        )
    extravars = parse_extra_vars(args.extra_var)
    hosts, result = _run(args, "rollback.yml", extravars, action="rollback")
    return finish(args, result, extravars, hosts)
