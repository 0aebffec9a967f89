#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: serving_plan
short_description: Decide how a MiniMax model is served on this host, or refuse with the fix
description:
  - Computes tensor, expert and data parallel sizes, memory fraction, maximum context, KV-cache capacity, parsers
    and the engine arguments from GPU facts (M(fleetserve.minimax.gpu_facts)), the model catalog
    (C(roles/preflight/vars/models.yml)) and the user's wishes.
  - Refuses, naming the fix, when the weights do not fit, a GPU is older than compute capability 7.0, parallel sizes
    do not divide the GPUs or the heads, the FP8 M2.x checkpoint is asked for pure TP8, the context exceeds the model
    or the KV cache, the engine release is below the model's floor, or the host's Python, glibc or driver is too old
    for the SGLang release.
  - With O(nodes), plans one SGLang engine over several hosts (tensor parallel over every GPU of every node) and
    refuses a group whose size differs from C(nnodes), nodes with different GPUs, a node without GPU facts in this
    run, vLLM, an unusable node-0 address or a distributed-init port equal to the engine port.
  - The arithmetic and its margins are described in C(docs/preflight.md).
version_added: 0.1.0
author: fleetserve maintainers (@fleetserve)
options:
  catalog:
    description:
      - The catalog as C({models, engine_hosts}).
      - The role passes C(__preflight_catalog) and C(__preflight_engine_hosts) from C(roles/preflight/vars/models.yml).
    type: dict
    required: true
  model:
    description: Catalog key of the model, e.g. C(MiniMax-M2.5).
    type: str
    required: true
  gpu_facts:
    description:
      - The registered result of M(fleetserve.minimax.gpu_facts).
      - Only its C(gpus), C(driver_version) and C(source) are read; with C(source=pci) (no driver yet) the
        driver version is not checked (O(expect) confirms the plan once the driver is installed).
    type: dict
    required: true
  python_version:
    description: Version of the Python the engine venv will use (the host's python3).
    type: str
    required: true
  glibc_version:
    description: The host's glibc version; read from the running interpreter when omitted.
    type: str
  expect:
    description:
      - A plan made earlier for this host (C(preflight_plan)) that the new one must match in every decision
        (GPUs, parallel sizes, context, engine, engine arguments); fails naming each difference.
      - The preflight role passes the plan it made from PCI on a host without a driver, once the driver is installed.
    type: dict
  disk:
    description:
      - Check free disk for the weights at C(wishes.models_dir); omit to skip.
      - C(copies) is 2 when the weights come through Git LFS (it keeps a second copy), C(margin) a fraction added on top.
    type: dict
    suboptions:
      copies:
        description: How many copies of the weights the download method keeps. Range 1 to 16.
        type: int
        default: 1
      margin:
        description: Extra fraction of the weights to keep free. Range 0.0 to 10.0.
        type: float
        default: 0.1
  nodes:
    description:
      - The multi-node group this host belongs to; omit (or C(nnodes=1) without a group) for a single-node engine.
      - The role builds it from the inventory and every member's GPU facts of this run (C(preflight_nnodes),
        C(preflight_node_group), C(preflight_node_address), C(preflight_dist_init_port)).
      - This host's C(node_rank) is its position in O(nodes.hosts); C(dist_init_addr) is the first host's address and
        C(dist_init_port). On a multi-node plan the module also checks that the first host's address resolves on
        this host.
    type: dict
    suboptions:
      nnodes:
        description: How many hosts the engine spans. Range 1 to 64.
        type: int
        default: 1
      group:
        description: Name of the inventory group whose hosts form the engine (for the messages).
        type: str
      me:
        description: This host's inventory name.
        type: str
      dist_init_port:
        description: TCP port on node 0 where SGLang's distributed initialisation meets. Range 1 to 65535.
        type: int
        default: 20000
      hosts:
        description:
          - Inventory names of the group's hosts in inventory order (node 0 first); null when the group does not exist.
        type: list
        elements: str
      members:
        description:
          - In the order of O(nodes.hosts), what each host recorded in this run, C({address, gpus}), or null for a host
            that recorded nothing (not in the play, or failed before).
          - C(gpus) is C({count, name, memory_total_mib}) from that host's GPU facts.
        type: list
        elements: raw
  wishes:
    description:
      - What the user asked for; each key may be null for "choose for me".
      - Keys C(engine), C(engine_version), C(tensor_parallel_size), C(expert_parallel_size), C(data_parallel_size),
        C(max_context), C(mem_fraction), C(reasoning_style), C(served_model_name), C(port), C(bind_address), C(models_dir).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Pure computation; runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only; there is nothing to diff.
  idempotent:
    support: full
    description: Never changes the host; the same inputs give the same plan.
"""

EXAMPLES = r"""
- name: Preflight | Plan the deployment
  fleetserve.minimax.serving_plan:
    catalog:
      models: "{{ __preflight_catalog }}"
      engine_hosts: "{{ __preflight_engine_hosts }}"
    model: MiniMax-M2.5
    gpu_facts: "{{ __preflight_gpu }}"
    python_version: "{{ ansible_facts['python_version'] }}"
    wishes:
      engine: sglang
      max_context: 131072
  register: __preflight_planned

- name: Preflight | Plan node 1 of a two-node SGLang engine
  fleetserve.minimax.serving_plan:
    catalog:
      models: "{{ __preflight_catalog }}"
      engine_hosts: "{{ __preflight_engine_hosts }}"
    model: MiniMax-M2.5
    gpu_facts: "{{ __preflight_gpu }}"
    python_version: "{{ ansible_facts['python_version'] }}"
    nodes:
      nnodes: 2
      group: m25_2x8xh100
      me: h100-02
      dist_init_port: 20000
      hosts: [h100-01, h100-02]
      members:
        - {address: 10.0.0.1, gpus: {count: 8, name: NVIDIA H100 80GB HBM3, memory_total_mib: 81559}}
        - {address: 10.0.0.2, gpus: {count: 8, name: NVIDIA H100 80GB HBM3, memory_total_mib: 81559}}
  register: __preflight_planned
"""

RETURN = r"""
plan:
  description: The serving plan (the C(preflight_plan) fact); every key is described in C(docs/preflight.md).
  returned: success
  type: dict
  sample:
    model: MiniMax-M2.5
    engine: sglang
    engine_version: 0.5.23
    tensor_parallel_size: 4
    expert_parallel_size: 1
    max_context: 196608
    kv_capacity_tokens: 451387
    nnodes: 1
    node_rank: 0
    dist_init_addr: null
    node_group: null
    engine_args: [--model-path, /srv/models/MiniMax-M2.5, --tp-size, "4"]
    engine_env: {}
"""

import os
import socket

from ansible_collections.fleetserve.minimax.plugins.module_utils import _plan, _plan_nodes
from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.module_utils._bounds import BoundedModule


def host_glibc() -> str | None:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").split()[-1]  # "glibc 2.36"
    except (ValueError, OSError, AttributeError, IndexError):
        return None


def check_disk(plan: dict, disk: dict) -> None:
    stat = os.statvfs(w.existing_ancestor(plan["model_dir"]))
    plan["disk_needed_bytes"] = _plan.check_disk(
        plan["model_dir"],
        plan["weights_bytes"],
        disk["copies"],
        disk["margin"],
        stat.f_bavail * stat.f_frsize,
        # Weights already downloaded count toward the need, so a re-run on a served host still passes.
        w.dir_bytes(plan["model_dir"]),
    )


# The ranges DOCUMENTATION states (Range LOW to HIGH.), suboptions as parent.child.
BOUNDS = {
    "nodes.nnodes": (1, 64),
    "nodes.dist_init_port": (1, 65535),
    "disk.copies": (1, 16),
    "disk.margin": (0.0, 10.0),
}


def main():
    module = BoundedModule(
        BOUNDS,
        argument_spec={
            "catalog": {"type": "dict", "required": True},
            "model": {"type": "str", "required": True},
            "gpu_facts": {"type": "dict", "required": True},
            "python_version": {"type": "str", "required": True},
            "glibc_version": {"type": "str"},
            "expect": {"type": "dict"},
            "wishes": {"type": "dict", "default": {}},
            "nodes": {
                "type": "dict",
                "options": {
                    "nnodes": {"type": "int", "default": 1},
                    "group": {"type": "str"},
                    "me": {"type": "str"},
                    "dist_init_port": {"type": "int", "default": 20000},
                    "hosts": {"type": "list", "elements": "str"},
                    "members": {"type": "list", "elements": "raw"},
                },
            },
            "disk": {
                "type": "dict",
                "options": {"copies": {"type": "int", "default": 1}, "margin": {"type": "float", "default": 0.1}},
            },
        },
        supports_check_mode=True,
    )
    params = module.params
    host = {"python_version": params["python_version"], "glibc_version": params["glibc_version"] or host_glibc()}
    try:
        plan = _plan.build_plan(
            params["catalog"], params["model"], params["gpu_facts"], host, params["wishes"], params["nodes"]
        )
        # Resolved here, on the node that will connect, not on the controller.
        _plan_nodes.check_head_resolves(plan, lambda name: socket.getaddrinfo(name, None))
        if params["disk"]:
            check_disk(plan, params["disk"])
        if params["expect"]:
            _plan.confirm_plan(params["expect"], plan)
    except ValueError as err:
        module.fail_json(msg=str(err), changed=False)
    module.exit_json(changed=False, plan=plan)


if __name__ == "__main__":
    main()
