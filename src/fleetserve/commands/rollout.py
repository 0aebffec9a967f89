"""`fleetserve rollout`: a routed rolling update (playbooks/rollout.yml): canary, then batches.

Each host leaves the router, gets the new engine, is verified and rejoins; a host that fails
verification is rolled back and the rollout stops (the playbook's header defines the variables). The
options here only map onto those variables; they never carry secrets: `-e` refuses secret-looking
keys, because ansible-runner stores extravars on disk in plain text (secrets come from the vault).
The canary, batch and failure limit must be extra vars: Ansible reads `serial` before any inventory.
"""

from __future__ import annotations

import argparse
import re

import yaml

from fleetserve import inventory, runner
from fleetserve.commands import _playbook
from fleetserve.errors import UserError
from fleetserve.progress import Progress

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# CLI option -> playbooks/rollout.yml variable (see the playbook's header comment).
ROLLOUT_VARS = {
    "engine_version": "preflight_engine_version",
    "canary": "rollout_canary",
    "batch": "rollout_batch",
    "max_fail": "rollout_max_fail_percentage",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "rollout",
        help="rolling update through the router: canary, batches, verify, roll back the host that fails",
        description="Run playbooks/rollout.yml: each host leaves the router, is updated and verified, then "
        "rejoins; a host failing verification is rolled back and the rollout stops.",
    )
    _playbook.add_target_arguments(parser, tags=False, check=False)
    parser.add_argument("--engine-version", help="engine version to move to (default: the inventory's pin)")
    parser.add_argument(
        "--canary", type=_positive_int, help="hosts in the first, canary batch (default: the playbook's)"
    )
    parser.add_argument(
        "--batch", type=_batch, help="hosts per batch after the canary: a count or a percentage like 25%%"
    )
    parser.add_argument(
        "--max-fail",
        type=_percentage,
        metavar="PCT",
        help="stop once more than PCT%% of a batch failed (default: the playbook's)",
    )
    add_extra_vars_argument(parser)
    parser.set_defaults(func=rollout)


def add_extra_vars_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-e",
        "--extra-var",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a playbook variable (repeatable; VALUE is YAML: a scalar or a flow mapping/list; no secrets)",
    )


def rollout(args: argparse.Namespace) -> int:
    extravars = parse_extra_vars(args.extra_var)
    for option, variable in ROLLOUT_VARS.items():
        value = getattr(args, option)
        if value is not None:
            extravars[variable] = value
    hosts, result = _run(args, "rollout.yml", extravars, action="rollout")
    return finish(args, result, extravars, hosts)


def finish(args: argparse.Namespace, result: runner.RunResult, extravars: dict, hosts: list[str]) -> int:
    """The run's table (or JSON) plus each host's rollout_result: updated, unchanged, rolled_back, failed."""
    outcomes = host_outcomes(result, hosts)
    code = _playbook.finish(args, result, extra={"extravars": extravars, "rollout": outcomes})
    if not args.json and outcomes:
        for host, outcome in outcomes.items():
            print(f"{host}: {outcome['action']}: {outcome.get('msg') or ''}".rstrip(": "))
    return code


def host_outcomes(result: runner.RunResult, hosts: list[str]) -> dict[str, dict]:
    """Each host's rollout_result. A host that failed or went unreachable before publishing one gets
    action "unreachable" or "failed" with its first failure; a targeted host the run never reached
    (a later batch after the rollout stopped, perhaps after the weights play ran on it) is "untouched". Routers
    are not targeted."""
    facts = result.host_facts("rollout_result")
    outcomes: dict[str, dict] = {}
    for name in sorted(set(result.hosts) | set(facts) | set(hosts)):
        host = result.hosts.get(name)
        if name in facts:
            outcomes[name] = dict(facts[name])
        elif host is not None and (host.unreachable or host.failed):
            msg = host.failures[0]["msg"] if host.failures else ""
            outcomes[name] = {"host": name, "action": "unreachable" if host.unreachable else "failed", "msg": msg}
        elif host is None or name in hosts:  # a later batch never reached (it may have run the weights play)
            outcomes[name] = {"host": name, "action": "untouched", "msg": "not reached: the rollout stopped before"}
    return outcomes


def _run(
    args: argparse.Namespace, playbook: str, extravars: dict, *, action: str
) -> tuple[list[str], runner.RunResult]:
    """_playbook.run plus extravars (_playbook.run takes none); the inventory is validated first.
    Returns the targeted engine hosts (the play's pattern leaves routers out) and the result."""
    inv = inventory.resolve(args.inventory)
    inventory.hosts(inv, args.limit)
    targets = inventory.hosts(inv, ",".join(p for p in (args.limit or "all", "!routers")))
    with Progress(action, targets) as progress:
        result = runner.run_playbook(
            playbook,
            inventory=inv,
            limit=args.limit,
            extravars=extravars,
            sink=progress,
            action=action,
            verbosity=args.verbose,
        )
    return targets, result


def parse_extra_vars(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs to a dict (VALUE is YAML: a scalar, or a flow mapping/list); refuse
    malformed pairs and secret-looking keys at any depth."""
    found: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _VAR_NAME.match(key):
            raise UserError(
                f"-e {item!r} is not KEY=VALUE with a variable name as KEY",
                "pass -e name=value, e.g. -e sglang_venv_version=0.5.4.post1",
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        for name in (key, *_nested_keys(value)):
            if runner.looks_secret(name):
                raise UserError(
                    f"-e {key}=... looks like a secret ({name}) and would be stored in the run's artifacts",
                    "put secrets in the inventory's vault (fleetserve_api_key, fleetserve_hf_token), "
                    "never on the command line",
                )
        found[key] = value
    return found


def _nested_keys(value) -> list[str]:
    if isinstance(value, dict):
        return [str(k) for k in value] + [n for v in value.values() for n in _nested_keys(v)]
    if isinstance(value, list):
        return [n for v in value for n in _nested_keys(v)]
    return []


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _percentage(text: str) -> int:
    try:
        value = int(text.rstrip("%"))
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to 100, got {text!r}")
    return value


def _batch(text: str) -> int | str:
    if text.endswith("%"):
        value = _percentage(text)
        if value == 0:
            raise argparse.ArgumentTypeError(f"must be above 0%, got {text!r}")
        return f"{value}%"
    return _positive_int(text)
