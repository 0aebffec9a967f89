"""`fleetserve lab up|down|status`: the local lab of systemd test hosts in Docker."""

from __future__ import annotations

import argparse
import json

from fleetserve import lab, paths


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lab", help="start or remove the local lab of systemd test hosts (Docker)")
    lab_sub = parser.add_subparsers(dest="lab_command", metavar="ACTION")
    lab_sub.required = True
    up = lab_sub.add_parser("up", help="start N lab hosts and write inventories/lab/hosts.yml")
    up.add_argument("--hosts", type=int, default=2, help="number of hosts (default: 2)")
    up.add_argument("--image", default=lab.IMAGE, help=f"test-host image (default: {lab.IMAGE})")
    up.add_argument("--no-build", action="store_true", help="fail instead of building a missing image")
    up.add_argument("--gpus", default=lab.DEFAULT_GPUS,
                    help=f"recorded GPU host the lab hosts replay (tests/fixtures/nvidia-smi/; default {lab.DEFAULT_GPUS})")
    up.set_defaults(func=_up)
    down = lab_sub.add_parser("down", help="remove every lab host and the lab inventory")
    down.set_defaults(func=_down)
    status = lab_sub.add_parser("status", help="list the lab hosts")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    hosts = lab.up(args.hosts, image=args.image, build=not args.no_build, gpus=args.gpus)
    print(f"lab up: {', '.join(hosts)}; inventory {paths.lab_inventory()}")
    return 0


def _down(_args: argparse.Namespace) -> int:
    removed = lab.down()
    print(f"lab down: removed {len(removed)} host(s)")
    return 0


def _status(args: argparse.Namespace) -> int:
    lab.require_docker()
    hosts = lab.existing_hosts()
    if args.json:
        print(json.dumps({"hosts": hosts, "inventory": str(paths.lab_inventory())}))
    else:
        print("\n".join(hosts) if hosts else "no lab hosts")
    return 0
