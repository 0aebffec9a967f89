"""`fleetserve teardown`: take engine hosts out of service (playbooks/teardown.yml).

Each host leaves the routers, drains, and its engine is removed by the role that runs it; weights and the
vLLM image only when asked; drivers and Docker never. --limit (or an explicit --all) is required: a
teardown of every host by accident would end the fleet's service.
"""

from __future__ import annotations

import argparse

from fleetserve import inventory, runner
from fleetserve.commands import _playbook
from fleetserve.commands.rollout import add_extra_vars_argument, parse_extra_vars
from fleetserve.errors import UserError
from fleetserve.progress import Progress


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "teardown",
        help="take the --limit hosts out of service: leave the routers, drain, remove the engine",
        description="Run playbooks/teardown.yml on the hosts named by --limit (or every engine host with --all). "
        "Weights and the vLLM image stay unless --remove-weights / --remove-image; drivers and Docker stay.",
    )
    _playbook.add_target_arguments(parser, tags=False, check=True)
    parser.add_argument("--all", action="store_true", help="every engine host of the inventory (instead of --limit)")
    parser.add_argument("--remove-weights", action="store_true", help="also delete the hosts' model directories")
    parser.add_argument("--remove-image", action="store_true", help="also remove the vLLM image (docker image rm)")
    add_extra_vars_argument(parser)
    parser.set_defaults(func=teardown)


def teardown(args: argparse.Namespace) -> int:
    if not args.limit and not args.all:
        raise UserError(
            "teardown needs --limit (or --all): it takes the hosts it acts on out of service",
            "pass --limit HOST[,HOST...] (or a group), e.g. fleetserve teardown --limit gpu-03; --all for every host",
        )
    if args.limit and args.all:
        raise UserError("--limit and --all contradict each other", "pass one of them")
    extravars = parse_extra_vars(args.extra_var)
    extravars.update(
        teardown_all=bool(args.all),
        teardown_remove_weights=bool(args.remove_weights),
        teardown_remove_image=bool(args.remove_image),
    )
    inv = inventory.resolve(args.inventory)
    targets = inventory.hosts(inv, ",".join(p for p in (args.limit or "all", "!routers")))
    with Progress("teardown", targets) as progress:
        result = runner.run_playbook(
            "teardown.yml",
            inventory=inv,
            limit=args.limit,
            extravars=extravars,
            check=args.check,
            sink=progress,
            action="teardown",
            verbosity=args.verbose,
        )
    outcomes = result.host_facts("teardown_result")
    code = _playbook.finish(args, result, extra={"extravars": extravars, "teardown": outcomes})
    if not args.json:
        for host, outcome in sorted(outcomes.items()):
            print(f"{host}: {outcome.get('action')}: {outcome.get('msg') or ''}".rstrip(": "))
    return code
