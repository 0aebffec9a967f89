# -*- coding: utf-8 -*-
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Multi-node serving plans: which node this host is, and where the nodes meet.

One SGLang engine may span several hosts (engine-facts 3.3): every node runs the same command with
`--nnodes N --node-rank R --dist-init-addr HOST:PORT`, node 0 serves the API and the others only answer
/health from a dummy server. The user names the inventory group that forms the engine; node ranks are
the hosts' positions in that group, so node 0 is the first host listed.

Pure functions. Every refusal raises NodeLayoutError (a ValueError) whose message names the fix.
"""

from __future__ import annotations

SINGLE_NODE = {"nnodes": 1, "node_rank": 0, "dist_init_addr": None, "node_group": None}


class NodeLayoutError(ValueError):
    """The requested multi-node layout cannot work; the message says what to change."""


def _gpu_line(member: dict) -> str:
    gpus = member["gpus"]
    return f"{member['name']} has {gpus['count']}x {gpus['name']} ({gpus['memory_total_mib']} MiB)"


def _check_group(nodes: dict) -> list:
    """The group's members in rank order; refuses a group that does not match preflight_nnodes."""
    nnodes, group, hosts, me = nodes["nnodes"], nodes["group"], nodes.get("hosts"), nodes["me"]
    if nnodes < 1:
        raise NodeLayoutError(f"preflight_nnodes {nnodes} must be >= 1; set it to the number of hosts the engine spans")
    if not group:
        raise NodeLayoutError(
            f"preflight_nnodes is {nnodes} but preflight_node_group is not set; set preflight_node_group to the "
            "inventory group whose hosts form this engine (node 0 first)"
        )
    if hosts is None:
        raise NodeLayoutError(
            f"preflight_node_group '{group}' is not a group of this inventory; add the group, or set "
            "preflight_node_group to the group whose hosts form this engine"
        )
    if len(hosts) != nnodes:
        raise NodeLayoutError(
            f"preflight_node_group '{group}' has {len(hosts)} hosts ({', '.join(hosts)}) but preflight_nnodes is "
            f"{nnodes}; list exactly {nnodes} hosts in the group or set preflight_nnodes to {len(hosts)}"
        )
    if me not in hosts:
        raise NodeLayoutError(
            f"{me} is not in preflight_node_group '{group}' ({', '.join(hosts)}); set preflight_nnodes and "
            "preflight_node_group only on the group's hosts (group_vars/<group>/)"
        )
    infos = list(nodes.get("members") or []) + [None] * len(hosts)
    return [dict(info or {}, name=name) for name, info in zip(hosts, infos)]


def _check_peers(group: str, members: list) -> None:
    """Every node reported its GPUs in this run, and all have the same GPUs (TP shards evenly)."""
    for rank, member in enumerate(members):
        if not member.get("gpus"):
            raise NodeLayoutError(
                f"node {member['name']} (node_rank {rank} of group '{group}') has no GPU facts in this run; run "
                "preflight on every host of the group together (a --limit must include the whole group) and fix "
                "the hosts that failed earlier"
            )
    first = members[0]["gpus"]
    for member in members[1:]:
        gpus = member["gpus"]
        if (gpus["count"], gpus["name"], gpus["memory_total_mib"]) != (
            first["count"],
            first["name"],
            first["memory_total_mib"],
        ):
            raise NodeLayoutError(
                f"the nodes of group '{group}' differ: {_gpu_line(members[0])}, {_gpu_line(member)}; one engine "
                "needs the same GPU model and count on every node: put identical hosts in the group"
            )


def node_layout(nodes: dict | None, engine: str, port: int) -> dict:
    """This host's place in a multi-node engine, or SINGLE_NODE.

    nodes: {nnodes, group, me, dist_init_port, hosts, members}: `hosts` the group's inventory names in
    inventory order (None when the group does not exist), `members` in the same order each host's
    {address, gpus: {count, name, memory_total_mib}} from this run, or None for a host that has none.
    None, or nnodes 1 without a group, is a single-node plan.
    """
    nnodes = 1 if not nodes or nodes.get("nnodes") is None else int(nodes["nnodes"])
    if not nodes or (nnodes == 1 and not nodes.get("group")):
        return dict(SINGLE_NODE)
    nodes = dict(nodes, nnodes=nnodes)
    members = _check_group(nodes)
    if nodes["nnodes"] == 1:
        return dict(SINGLE_NODE, node_group=nodes["group"])
    if engine != "sglang":
        raise NodeLayoutError(
            f"a {nodes['nnodes']}-node engine needs SGLang: the vllm_docker role runs one vLLM container per host "
            "(no Ray cluster, no multi-node vLLM); set preflight_engine to sglang, or preflight_nnodes to 1 and "
            "serve each host on its own behind the router"
        )
    _check_peers(nodes["group"], members)
    head = members[0]
    address = str(head.get("address") or "")
    dist_port = int(nodes["dist_init_port"])
    if not address:
        raise NodeLayoutError(
            f"node 0 ({head['name']}) of group '{nodes['group']}' has no address; set preflight_node_address "
            "(or ansible_host) for it to an address the other nodes reach"
        )
    if ":" in address:
        raise NodeLayoutError(
            f"node 0 ({head['name']}) has the IPv6 address {address}; --dist-init-addr takes HOST:PORT, so set "
            "preflight_node_address for it to an IPv4 address or a host name"
        )
    if not 0 < dist_port < 65536 or dist_port == int(port):
        raise NodeLayoutError(
            f"preflight_dist_init_port {dist_port} must be a free TCP port other than the engine port {port}; "
            "choose another preflight_dist_init_port"
        )
    return {
        "nnodes": nodes["nnodes"],
        "node_rank": [m["name"] for m in members].index(nodes["me"]),
        "dist_init_addr": f"{address}:{dist_port}",
        "node_group": nodes["group"],
    }


def check_head_resolves(plan: dict, resolve) -> None:
    """Refuses when node 0's address does not resolve here; resolve(host) raises OSError on failure."""
    if plan["nnodes"] < 2:
        return
    host = plan["dist_init_addr"].rsplit(":", 1)[0]
    try:
        resolve(host)
    except OSError as err:
        raise NodeLayoutError(
            f"node 0's address '{host}' (group '{plan['node_group']}') does not resolve on this host ({err}); set "
            "preflight_node_address for node 0 to an IP address every node reaches, or fix DNS or /etc/hosts"
        ) from None


def parallel_check(nnodes: int, gpus_per_node: int, tp: int, dp: int) -> None:
    """A multi-node engine shards one replica over every GPU of every node."""
    if nnodes < 2:
        return
    total = nnodes * gpus_per_node
    if dp != 1 or tp != total:
        raise NodeLayoutError(
            f"a {nnodes}-node engine is one tensor-parallel replica over all {total} GPUs ({nnodes} nodes x "
            f"{gpus_per_node}); got tensor_parallel_size {tp} x data_parallel_size {dp}: leave "
            "preflight_tensor_parallel_size and preflight_data_parallel_size unset, or serve the hosts as "
            "separate single-node engines behind the router"
        )
