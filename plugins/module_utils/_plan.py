# -*- coding: utf-8 -*-
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serving plan: GPU facts + catalog entry + engine + wishes -> the `preflight_plan` fact.

Pure functions. Every refusal raises PlanError (a ValueError) whose message names the fix.

Memory model, per GPU (bytes). Both engines size the KV pool as "budget minus what is already there":

  budget = mem_fraction x total GPU memory
  kv_pool = budget - weights/TP - runtime reserve - linear-attention state (M1)

* SGLang (`--mem-fraction-static`): the fraction covers weights + KV pool. The pool is
  (free memory measured after the weights load) - total x (1 - fraction), so the CUDA context and
  the communicator buffers, which exist by then, come out of it; activations live in the rest.
  Reserve = CUDA_CONTEXT_BYTES + COMM_BUFFER_BYTES (the latter only when GPUs talk).
* vLLM (`--gpu-memory-utilization`): the fraction covers weights + peak activation of its profiling
  forward pass + non-torch memory allocated after start-up (NCCL, custom all-reduce) + KV cache; the
  CUDA context is in its start-up baseline, outside the fraction.
  Reserve = COMM_BUFFER_BYTES + activation_bytes() (fused-MoE buffers for one batch of
  PROFILE_TOKENS tokens, plus fp32 logits and probabilities for every admitted sequence).
* M1 keeps a constant-size lightning-attention state per admitted sequence (fp32 in vLLM's V0
  engine, bf16 in V1), allocated for max_num_seqs sequences; it is reserved in full.
"""

from __future__ import annotations

import re

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _plan_nodes

MIB = 2**20
CUDA_CONTEXT_BYTES = 512 * MIB  # CUDA 12/13 context with lazy module loading on Hopper: 0.4-0.6 GiB
COMM_BUFFER_BYTES = 512 * MIB  # NCCL channel buffers (NCCL_BUFFSIZE 4 MiB x channels x peers) + custom all-reduce
PROFILE_TOKENS = 8192  # vLLM's default max_num_batched_tokens for the OpenAI server (V1 scheduler)
DEFAULT_MAX_NUM_SEQS = {"vllm": 256, "sglang": None}  # vLLM's --max-num-seqs default
MIN_CONTEXT = 4096
DEFAULT_FRACTION = {"vllm": 0.9, "sglang": 0.85}  # vLLM default; the MiniMax SGLang guides' --mem-fraction-static
DEFAULT_PORT = 8000
LOAD_BYTES_PER_S = 1_000_000_000  # start timeout: weights read at >= 1 GB/s from local disk ...
START_BASE_S = 600  # ... plus 10 min for compilation, CUDA graphs and warm-up


class PlanError(ValueError):
    """The requested deployment cannot work on this host; the message says what to change."""


def _gb(value: float) -> str:
    return f"{value / 1e9:.1f} GB"


def check_gpus(gpus: list) -> dict:
    """Identical, non-MIG GPUs with compute capability >= 7.0; returns the first as the type."""
    if not gpus:
        raise PlanError(
            "no GPU on this host; the plan needs NVIDIA GPUs with compute capability >= 7.0: target a GPU host"
        )
    names = sorted({g["name"] for g in gpus})
    if len(names) > 1:
        raise PlanError(
            f"this host mixes GPU models ({', '.join(names)}); the engines need identical GPUs: "
            "limit the host to one model with CUDA_VISIBLE_DEVICES or serve elsewhere"
        )
    for gpu in gpus:
        if gpu.get("mig_mode"):
            raise PlanError(
                f"GPU {gpu['index']} has MIG enabled; the engines need whole GPUs: "
                f"run 'nvidia-smi -i {gpu['index']} -mig 0' and reset the GPU"
            )
        major, minor = (int(p) for p in str(gpu["compute_capability"]).split("."))
        if (major, minor) < (7, 0):
            raise PlanError(
                f"GPU {gpu['index']} ({gpu['name']}) has compute capability {major}.{minor}; "
                "MiniMax models need >= 7.0 (Volta or newer): use newer GPUs"
            )
    return gpus[0]


def check_host(
    engine: str, version: str, requirement: dict | None, host: dict, driver: str | None, driver_pending: bool = False
) -> None:
    """The host's Python, glibc and NVIDIA driver against what this engine release needs.

    driver_pending: the GPUs were read from PCI on a host without a driver; its version is checked when the
    plan is confirmed after the driver install (confirm_plan)."""
    if not requirement:
        return
    fix = "pin an older release with preflight_engine_version (0.5.4.post1 needs Python >= 3.10, glibc >= 2.28, driver >= 525)"
    checks = (
        ("Python", host.get("python_version"), requirement["python"], "upgrade the host Python"),
        ("glibc", host.get("glibc_version"), requirement["glibc"], "upgrade the OS (Ubuntu 22.04+, Debian 12)"),
        ("NVIDIA driver", driver, requirement["driver"], "upgrade the driver (role fleetserve.minimax.nvidia_driver)"),
    )
    for what, found, needed, upgrade in checks:
        if what == "NVIDIA driver" and driver_pending:
            continue  # no driver yet: the driver role installs its pin, and the plan is confirmed after that
        if found is None:
            raise PlanError(
                f"the host's {what} version is unknown; {engine} {version} needs {what} >= {needed}: gather facts first"
            )
        if not _catalog.version_at_least(found, needed):
            raise PlanError(f"{engine} {version} needs {what} >= {needed}, the host has {found}; {upgrade}, or {fix}")


def parallel_sizes(model: str, entry: dict, engine: str, gpu_count: int, wishes: dict) -> tuple:
    """(tp, ep, dp): defaults use every GPU; wishes are checked against GPUs, heads and FP8 blocks."""
    dp = int(wishes.get("data_parallel_size") or 1)
    tp = int(wishes.get("tensor_parallel_size") or gpu_count // dp)
    if tp < 1 or dp < 1:
        raise PlanError(
            "parallel sizes must be >= 1; fix preflight_tensor_parallel_size / preflight_data_parallel_size"
        )
    if tp * dp > gpu_count or gpu_count % (tp * dp):
        raise PlanError(
            f"tensor_parallel_size {tp} x data_parallel_size {dp} does not divide the {gpu_count} GPUs "
            "of this host; choose sizes whose product divides the GPU count"
        )
    heads, kv_heads = entry["num_attention_heads"], entry["num_key_value_heads"]
    if heads % tp or (kv_heads % tp and tp % kv_heads):
        raise PlanError(
            f"tensor_parallel_size {tp} does not divide {model}'s {heads} attention heads and "
            f"{kv_heads} KV heads; use 1, 2, 4 or 8"
        )
    block = entry.get("fp8_block_n")
    ep = wishes.get("expert_parallel_size")
    if ep is None:
        # Expert parallel only where the FP8 block layout forces it (the guides' 8-GPU commands).
        ep = 1 if not block or (entry["intermediate_size"] // tp) % block == 0 else tp * dp
    ep = int(ep)
    if engine == "vllm" and ep not in (1, tp * dp):
        raise PlanError(
            f"vLLM's expert parallelism spans all {tp * dp} GPUs (--enable-expert-parallel); "
            f"set preflight_expert_parallel_size to 1 or {tp * dp}"
        )
    if engine == "sglang" and (ep < 1 or tp % ep):
        raise PlanError(
            f"expert_parallel_size {ep} must divide tensor_parallel_size {tp} on SGLang; "
            f"set preflight_expert_parallel_size to a divisor of {tp}"
        )
    moe_tp = tp // ep if engine == "sglang" else (1 if ep > 1 else tp)
    if block and (entry["intermediate_size"] % moe_tp or (entry["intermediate_size"] // moe_tp) % block):
        raise PlanError(
            f"pure tensor parallel {tp} is not supported for the {model} FP8 checkpoint: intermediate_size "
            f"{entry['intermediate_size']} / {moe_tp} = {entry['intermediate_size'] // moe_tp} is not a multiple of the "
            f"FP8 block {block}; set preflight_expert_parallel_size to {tp * dp if engine == 'vllm' else tp} "
            "(TP+EP) or preflight_tensor_parallel_size to 4"
        )
    return tp, ep, dp


def activation_bytes(entry: dict, tp: int, ep: int, max_num_seqs: int) -> int:
    """vLLM's profiling peak: fused-MoE buffers for PROFILE_TOKENS tokens plus sampler logits."""
    hidden, topk = entry["hidden_size"], entry["num_experts_per_tok"]
    inter = entry["intermediate_size"] // (1 if ep > 1 else tp)
    # residual + normed hidden, gate/up (2I) and down (I) caches, and the top-k expert outputs; bf16
    per_token = (2 * hidden + topk * 3 * inter + topk * hidden) * 2
    return PROFILE_TOKENS * per_token + max_num_seqs * entry["vocab_size"] * 4 * 2


def memory(
    entry: dict,
    engine: str,
    version: str,
    spec: dict,
    gpu_bytes: int,
    fraction: float,
    tp: int,
    ep: int,
    max_num_seqs: int | None,
) -> dict:
    """Per-GPU memory budget and KV capacity (tokens per replica)."""
    world = tp
    reserve = COMM_BUFFER_BYTES if world > 1 else 0
    if engine == "sglang":
        reserve += CUDA_CONTEXT_BYTES
    else:
        reserve += activation_bytes(entry, tp, ep, max_num_seqs or DEFAULT_MAX_NUM_SEQS["vllm"])
    state = 0
    if entry["linear_state_bytes_per_seq"]:
        v0 = spec.get("v0_only_below") and not _catalog.version_at_least(version, spec["v0_only_below"])
        per_seq = entry["linear_state_bytes_per_seq"] // (1 if v0 else 2)  # catalog value is fp32 (V0)
        state = per_seq // tp * (max_num_seqs or DEFAULT_MAX_NUM_SEQS["vllm"])
    kv_heads = entry["num_key_value_heads"]
    kv_per_token = entry["kv_bytes_per_token"] * max(1, kv_heads // tp) // kv_heads
    budget = int(fraction * gpu_bytes)
    weights = entry["gpu_weights_bytes"] // tp
    pool = budget - weights - reserve - state
    return {
        "gpu_bytes": gpu_bytes,
        "budget_bytes": budget,
        "weights_bytes": weights,
        "reserve_bytes": reserve,
        "linear_state_bytes": state,
        "kv_pool_bytes": max(pool, 0),
        "kv_bytes_per_token": kv_per_token,
        "kv_capacity_tokens": max(pool, 0) // kv_per_token,
        "shortfall_bytes": max(-pool, 0),
    }


def check_disk(
    model_dir: str, weights_bytes: int, copies: int, margin: float, free_bytes: int, present_bytes: int
) -> int:
    """Bytes still needed at the models dir; refuses when the filesystem has less free."""
    needed = int(weights_bytes * copies * (1 + margin)) - present_bytes
    if needed > free_bytes:
        how = " (twice the weights: Git LFS keeps a second copy under .git/lfs)" if copies > 1 else ""
        raise PlanError(
            f"{model_dir} needs {_gb(needed)} more free disk for the weights plus {int(margin * 100)}% margin{how}, "
            f"its filesystem has {_gb(free_bytes)} free; free space, mount a larger disk, or set fleetserve_models_dir"
        )
    return max(needed, 0)


def engine_args(model: str, entry: dict, engine: str, spec: dict, plan: dict) -> list:
    """The engine's argv after its entrypoint, --host and --port included (never the API key).

    _launch.launch_spec adds the launcher, the role's extra flags and the secret file; nothing else."""
    parser = plan["reasoning_parser"]
    if engine == "vllm":
        # --model always: the api_server entrypoint silently ignores a positional model (engine-facts 1.1).
        args = [
            "--model",
            plan["model_dir"],
            "--served-model-name",
            plan["served_model_name"],
            "--tensor-parallel-size",
            str(plan["tensor_parallel_size"]),
        ]
        if plan["data_parallel_size"] > 1:
            args += ["--data-parallel-size", str(plan["data_parallel_size"])]
        if plan["expert_parallel_size"] > 1:
            args.append("--enable-expert-parallel")
        args += ["--max-model-len", str(plan["max_context"]), "--gpu-memory-utilization", str(plan["mem_fraction"])]
        if entry.get("max_num_seqs"):
            args += ["--max-num-seqs", str(entry["max_num_seqs"])]
        args += list(spec["flags"]) + ["--enable-auto-tool-choice", "--tool-call-parser", spec["tool_call_parser"]]
        if parser:
            args += ["--reasoning-parser", parser]
        if spec.get("chat_template"):
            args += ["--chat-template", spec["chat_template"]]
        return args + ["--host", str(plan["host"]), "--port", str(plan["port"])]
    args = [
        "--model-path",
        plan["model_dir"],
        "--served-model-name",
        plan["served_model_name"],
        "--tp-size",
        str(plan["tensor_parallel_size"]),
    ]
    if plan["expert_parallel_size"] > 1:
        args += ["--ep-size", str(plan["expert_parallel_size"])]
    if plan["data_parallel_size"] > 1:
        args += ["--dp-size", str(plan["data_parallel_size"])]
    if plan["nnodes"] > 1:
        # The same argv on every node; only the rank differs (engine-facts 3.3).
        args += ["--nnodes", str(plan["nnodes"]), "--node-rank", str(plan["node_rank"])]
        args += ["--dist-init-addr", plan["dist_init_addr"]]
    args += ["--context-length", str(plan["max_context"]), "--mem-fraction-static", str(plan["mem_fraction"])]
    args += list(spec["flags"]) + ["--tool-call-parser", spec["tool_call_parser"]]
    if parser:
        args += ["--reasoning-parser", parser]
    # SGLang serves /metrics (on the serving port) only when asked; vLLM always does. The fleet is monitored
    # (roles/monitoring) and a rollout drains by the in-flight gauge, so every plan asks.
    args.append("--enable-metrics")
    return args + ["--host", str(plan["host"]), "--port", str(plan["port"])]


def engine_env(engine: str, version: str, spec: dict) -> dict:
    env = {}
    if engine == "vllm":
        env["SAFETENSORS_FAST_GPU"] = "1"  # every MiniMax guide sets it; no effect found, harmless
        v0_only = spec.get("v0_only_below")
        # VLLM_USE_V1=0 crashes vLLM 0.11.0 and is ignored later; set it only where the model is V0-only.
        if v0_only and not _catalog.version_at_least(version, v0_only):
            env["VLLM_USE_V1"] = "0"
    return env


def fewest_gpus_hint(entry: dict, mem: dict, tp: int) -> str:
    """Name the smallest tensor-parallel size (of the same GPU) at which the weights would fit."""
    room = mem["budget_bytes"] - mem["reserve_bytes"] - mem["linear_state_bytes"]
    for size in (1, 2, 4, 8, 16, 32, 64):
        if size > tp and entry["num_attention_heads"] % size == 0 and entry["gpu_weights_bytes"] // size < room:
            return f"use at least {size} such GPUs (tensor_parallel_size {size}) or larger GPUs"
    return "use larger GPUs or a multi-node deployment"


def choose_context(model: str, entry: dict, wished, capacity: int, mem: dict, tp: int) -> int:
    if wished is not None:
        wished = int(wished)
        if wished > entry["max_context"]:
            raise PlanError(
                f"preflight_max_context {wished} exceeds {model}'s maximum of {entry['max_context']} "
                f"tokens per sequence; lower preflight_max_context to <= {entry['max_context']}"
            )
        if wished < MIN_CONTEXT:
            raise PlanError(f"preflight_max_context {wished} is below {MIN_CONTEXT}; raise it")
        if wished > capacity:
            need = wished * mem["kv_bytes_per_token"]
            raise PlanError(
                f"a {wished}-token context needs {_gb(need)} of KV cache per GPU at tensor_parallel_size {tp}, but only "
                f"{_gb(mem['kv_pool_bytes'])} is left after weights and reserves; lower preflight_max_context to "
                f"<= {capacity}, raise preflight_mem_fraction, or use more or larger GPUs"
            )
        return wished
    if capacity < MIN_CONTEXT:
        raise PlanError(
            f"only {capacity} tokens of KV cache fit per replica (minimum {MIN_CONTEXT}); "
            "use more or larger GPUs, or raise preflight_mem_fraction"
        )
    return min(entry["default_context"], capacity)


_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def plan_revision(entry: dict, wish) -> str:
    """The hub revision to serve: preflight_revision, else the catalog's (a branch, tag or commit)."""
    revision = str(wish or entry["revision"])
    if not _REVISION.match(revision) or ".." in revision or revision.endswith("/"):
        raise PlanError(
            f"preflight_revision {revision!r} is not a branch, tag or commit name: set it to a branch, tag or "
            "commit of the model's repository on the hub, e.g. main or a 40-hex commit"
        )
    return revision


def model_dir(models_dir, model: str, revision: str) -> str:
    """Where the weights live: one directory per model and revision, so a revision rollout fetches the new
    weights beside the ones the running engine uses (the catalog's usual ``main`` keeps the plain name)."""
    base = f"{(models_dir or '/srv/models').rstrip('/')}/{model}"
    return base if revision == "main" else f"{base}--{revision.replace('/', '--')}"


def build_plan(catalog: dict, model: str, gpu_facts: dict, host: dict, wishes: dict, nodes: dict | None = None) -> dict:
    """The preflight_plan fact (schema: docs/preflight.md), or PlanError naming the fix.

    nodes: the multi-node group as _plan_nodes.node_layout reads it (its refusals are NodeLayoutError,
    also a ValueError); None for a single-node engine.
    """
    entry = _catalog.model_entry(catalog, model)
    revision = plan_revision(entry, wishes.get("revision"))
    engine = wishes.get("engine") or entry["default_engine"]
    spec = _catalog.engine_spec(model, entry, engine)
    version = str(wishes.get("engine_version") or spec["default"])
    _catalog.check_engine_version(model, engine, spec, version)
    gpu = check_gpus(gpu_facts.get("gpus") or [])
    check_host(
        engine,
        version,
        _catalog.host_requirements(catalog["engine_hosts"], engine, version),
        host,
        gpu_facts.get("driver_version"),
        driver_pending=gpu_facts.get("source") == "pci",
    )
    fraction = float(wishes.get("mem_fraction") or DEFAULT_FRACTION[engine])
    if not 0 < fraction < 1:
        raise PlanError(
            f"preflight_mem_fraction {fraction} must be between 0 and 1 (exclusive); "
            f"the {engine} default is {DEFAULT_FRACTION[engine]}"
        )
    port = plan_port(wishes.get("port"))
    layout = _plan_nodes.node_layout(nodes, engine, port)
    per_node = len(gpu_facts["gpus"])
    if layout["nnodes"] > 1:
        dp_wish = int(wishes.get("data_parallel_size") or 1)
        tp_wish = int(wishes.get("tensor_parallel_size") or per_node * layout["nnodes"] // dp_wish)
        _plan_nodes.parallel_check(layout["nnodes"], per_node, tp_wish, dp_wish)
    tp, ep, dp = parallel_sizes(model, entry, engine, per_node * layout["nnodes"], wishes)
    mem = memory(
        entry, engine, version, spec, gpu["memory_total_mib"] * MIB, fraction, tp, ep, entry.get("max_num_seqs")
    )
    if mem["shortfall_bytes"]:
        raise PlanError(
            f"{model} does not fit: {_gb(mem['weights_bytes'])} of weights per GPU at tensor_parallel_size {tp} plus "
            f"{_gb(mem['reserve_bytes'] + mem['linear_state_bytes'])} of runtime reserve exceed the "
            f"{_gb(mem['budget_bytes'])} budget ({fraction} x {_gb(mem['gpu_bytes'])}) of each {gpu['name']}; "
            f"{fewest_gpus_hint(entry, mem, tp)}"
        )
    context = choose_context(model, entry, wishes.get("max_context"), mem["kv_capacity_tokens"], mem, tp)
    style = wishes.get("reasoning_style") or ("append_think" if spec["reasoning_parsers"] else None)
    if style and style not in spec["reasoning_parsers"]:
        raise PlanError(
            f"{model} on {engine} has no '{style}' reasoning parser; set preflight_reasoning_style to one of: "
            f"{', '.join(sorted(spec['reasoning_parsers'])) or 'null (none)'}"
        )
    plan = {
        "model": model,
        "hf_repo": entry["hf_repo"],
        "revision": revision,
        "engine": engine,
        "engine_version": version,
        "served_model_name": wishes.get("served_model_name") or entry["hf_repo"],
        "model_dir": model_dir(wishes.get("models_dir"), model, revision),
        "weights_bytes": entry["weights_bytes"],
        "gpu_count": len(gpu_facts["gpus"]),
        "gpu_name": gpu["name"],
        "tensor_parallel_size": tp,
        "expert_parallel_size": ep,
        "data_parallel_size": dp,
        "pipeline_parallel_size": 1,
        "nnodes": layout["nnodes"],
        "node_rank": layout["node_rank"],
        "dist_init_addr": layout["dist_init_addr"],
        "node_group": layout["node_group"],
        "mem_fraction": fraction,
        "max_context": context,
        "kv_capacity_tokens": mem["kv_capacity_tokens"] * dp,
        "reasoning_parser": spec["reasoning_parsers"].get(style) if style else None,
        "tool_call_parser": spec["tool_call_parser"],
        "reasoning_style": style,
        "port": port,  # node 0 serves the API here; nodes >= 1 answer /health from a dummy server on it
        "host": wishes.get("bind_address") or "0.0.0.0",
        "start_timeout_s": START_BASE_S + entry["weights_bytes"] // LOAD_BYTES_PER_S,
        "memory": mem,
    }
    plan["engine_args"] = engine_args(model, entry, engine, spec, plan)
    plan["engine_env"] = engine_env(engine, version, spec)
    return plan


# What a plan made from PCI (before the driver) must share with the plan made through nvidia-smi: every
# decision the later roles act on. kv_capacity_tokens and memory follow from these and the GPU memory.
CONFIRMED_FIELDS = (
    "gpu_count",
    "gpu_name",
    "tensor_parallel_size",
    "expert_parallel_size",
    "data_parallel_size",
    "max_context",
    "engine",
    "engine_version",
    "engine_args",
)


def confirm_plan(expected: dict, plan: dict) -> None:
    """Refuse a plan that differs from the one the host was prepared for (read from PCI before its driver)."""
    differences = [
        f"{field} {expected.get(field)!r} -> {plan.get(field)!r}"
        for field in CONFIRMED_FIELDS
        if expected.get(field) != plan.get(field)
    ]
    if differences:
        raise PlanError(
            "with the driver installed, nvidia-smi shows GPUs that change the plan made from PCI before it: "
            f"{'; '.join(differences)}. Correct this SKU's entry with preflight_pci_gpus_extra (name, memory_total_mib "
            "and compute_capability as nvidia-smi reports them), then re-run; nothing was started on this host"
        )


def plan_port(wish) -> int:
    """The engine port of a plan: preflight_port, or DEFAULT_PORT when it is null."""
    return int(wish or DEFAULT_PORT)


def serving_endpoint(port_wish, nnodes, node_group, group_hosts, me: str) -> dict:
    """Where a host serves, as its plan says, from the inventory alone: {port, node_rank, nnodes, node_group}.

    What the router lists its workers by when playbooks/router.yml runs without the preflight play. The rank
    is the host's place in its node group (inventory order), as _plan_nodes.node_layout numbers it."""
    nnodes = int(nnodes or 1)
    rank = 0
    if nnodes > 1:
        hosts = list(group_hosts or [])
        if me not in hosts or len(hosts) != nnodes:
            raise PlanError(
                f"{me} has preflight_nnodes {nnodes} but is not one of exactly that many hosts of preflight_node_group "
                f"'{node_group}', so its node rank is unknown: set preflight_node_group to the inventory group whose "
                "hosts form this engine (node 0 first), or preflight_nnodes to 1; `fleetserve plan` shows the full check"
            )
        rank = hosts.index(me)
    return {"port": plan_port(port_wish), "node_rank": rank, "nnodes": nnodes, "node_group": node_group or None}
