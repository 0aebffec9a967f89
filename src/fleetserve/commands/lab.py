"""`fleetserve lab up|down|status`: the local lab of systemd test hosts in Docker, with its hub and engine wheels."""

from __future__ import annotations

import argparse
import json

from fleetserve import lab, paths


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lab", help="start or remove the local lab of systemd test hosts (Docker)")
    lab_sub = parser.add_subparsers(dest="lab_command", metavar="ACTION")
    lab_sub.required = True
    up = lab_sub.add_parser("up", help="start N lab hosts, the lab hub and wheels; write inventories/lab/hosts.yml")
    up.add_argument("--hosts", type=int, default=2, help="number of engine hosts (group lab_workers; default: 2)")
    up.add_argument(
        "--routers",
        type=int,
        default=0,
        choices=(0, 1),
        help="router hosts in front of the workers (group routers; default: 0)",
    )
    up.add_argument("--image", default=lab.IMAGE, help=f"test-host image (default: {lab.IMAGE})")
    up.add_argument("--no-build", action="store_true", help="fail instead of building a missing image")
    up.add_argument(
        "--gpus",
        default=lab.DEFAULT_GPUS,
        help=f"recorded GPU host the lab hosts replay (tests/fixtures/nvidia-smi/; default {lab.DEFAULT_GPUS})",
    )
    up.add_argument(
        "--bare",
        action="store_true",
        help="workers as GPU hosts arrive: no driver or nvidia-smi, the recorded PCI list, the stand-in driver "
        "packages in the lab's apt repository (site.yml installs them)",
    )
    up.add_argument(
        "--vllm",
        type=int,
        default=0,
        metavar="N",
        help="the last N workers are vLLM hosts: vLLM in Docker (a nested dockerd holding the stand-in vLLM "
        "images), group lab_vllm (default: 0)",
    )
    up.set_defaults(func=_up)
    down = lab_sub.add_parser("down", help="remove every lab host, the lab hub, network and inventory")
    down.set_defaults(func=_down)
    status = lab_sub.add_parser("status", help="list the lab hosts and its hub")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    hosts = lab.up(
        args.hosts,
        image=args.image,
        build=not args.no_build,
        gpus=args.gpus,
        routers=args.routers,
        bare=args.bare,
        vllm=args.vllm,
    )
    hub = lab.status()["hub"] or {}
    print(f"lab up: {', '.join(hosts)}; hub {hub.get('url')}; inventory {paths.lab_inventory()}")
    return 0


def _down(_args: argparse.Namespace) -> int:
    removed = lab.down()
    print(f"lab down: removed {len(removed)} host(s)")
    return 0


def _status(args: argparse.Namespace) -> int:
    lab.require_docker()
    state = lab.status()
    if args.json:
        print(json.dumps(state))
        return 0
    if not state["workers"] and not state["routers"]:
        print(f"lab {state['lab']}: no lab hosts")
        return 0
    hub = state["hub"] or {}
    print(f"lab {state['lab']} (network {state['network']})")
    print(f"  workers: {', '.join(state['workers']) or '-'}")
    print(f"  routers: {', '.join(state['routers']) or '-'}")
    print(f"  vLLM:    {', '.join(state['vllm']) or '-'}")
    print(f"  hub:     {hub.get('url') or '-'} ({'running' if hub.get('running') else 'not running'})")
    print(f"  inventory: {state['inventory'] or '-'}")
    return 0
