#!/usr/bin/env python3
"""Real vLLM on a lent GPU, started with the argv our planner and the vllm_docker role render.

Subcommands (all stdlib; the collection's module_utils are imported from this checkout):

  argv  --smi-dir DIR     the plan and the launch argv for the nvidia-smi recording in DIR
                          (nvidia-smi-q.xml, query-gpu.csv, topo.txt), as JSON. Runs anywhere.
  run   --site DIR ...    on the GPU machine: record nvidia-smi and PCI, plan from the live nvidia-smi,
                          make the tiny checkpoint, start vLLM, record its answers while it warms up and
                          once ready, run our verifier (plugins/module_utils/_openai.py) against it, stop
                          it, and write everything under --out.

The launch argv is the vllm_docker role's container command (roles/vllm_docker/vars/main.yml,
__vllm_docker_argv with the default api_server launcher) with the container entrypoint `python3`
replaced by this machine's python. The API key travels in VLLM_API_KEY (as the role's env file does),
never in argv, and is never written to the recordings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_tiny_m2  # noqa: E402

MODEL = "fleetserve-gpu-tiny-m2"
ENGINE_VERSION = "0.26.0"
PORT = 8000
# What this lent machine needs and a vllm/vllm-openai image would not: the wheels' site directory on
# the path, and no FlashInfer sampler (FlashInfer is left out of the carried wheels).
MACHINE_ENV = {"VLLM_USE_FLASHINFER_SAMPLER": "0", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def collection_path() -> Path:
    """A ansible_collections/fleetserve/minimax symlink to this checkout (as tests/conftest.py makes)."""
    base = Path(os.environ.get("FLEETSERVE_COLLECTIONS", ROOT / ".cache" / "collections"))
    link = base / "ansible_collections" / "fleetserve" / "minimax"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    return base


def catalog_entry() -> dict:
    """The catalog entry of the checkpoint make_tiny_m2 writes: MiniMax-M2's, with the tiny shape."""
    s = make_tiny_m2.SHAPE
    return {
        "inherits": "MiniMax-M2",
        "hf_repo": "local-org/tiny-minimax-m2-gpu",
        "weights_bytes": make_tiny_m2.total_bytes(),
        "gpu_weights_bytes": make_tiny_m2.weights_bytes(),
        "num_hidden_layers": s["num_hidden_layers"],
        "full_attention_layers": s["num_hidden_layers"],
        "num_attention_heads": s["num_attention_heads"],
        "num_key_value_heads": s["num_key_value_heads"],
        "head_dim": s["head_dim"],
        "hidden_size": s["hidden_size"],
        "intermediate_size": s["intermediate_size"],
        "num_experts_per_tok": s["num_experts_per_tok"],
        "vocab_size": s["vocab_size"],
        "kv_bytes_per_token": s["num_hidden_layers"] * s["num_key_value_heads"] * s["head_dim"] * 2 * 2,
        "fp8_block_n": None,
        "max_context": s["max_position_embeddings"],
        "default_context": s["max_position_embeddings"],
    }


def load_catalog():
    collection_path()
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog

    catalog = _catalog.load_catalog(ROOT / _catalog.CATALOG_RELPATH)
    catalog["models"][MODEL] = catalog_entry()
    _catalog.check_catalog(catalog)
    return catalog


def gpu_facts(xml: str, csv: str, topo: str) -> dict:
    collection_path()
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _gpu

    facts = _gpu.merge_facts(_gpu.parse_query_xml(xml), _gpu.parse_query_csv(csv), _gpu.parse_topo(topo), 0)
    return dict(facts, source="nvidia-smi")


def plan_and_argv(facts: dict, python: str, models_dir: str) -> dict:
    """preflight's plan for the tiny model on vLLM 0.26.0, and the role's launch argv for it."""
    collection_path()
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _launch, _plan

    host = {
        "python_version": "%d.%d.%d" % sys.version_info[:3],
        "glibc_version": os.confstr("CS_GNU_LIBC_VERSION").split()[-1],
    }
    wishes = {"engine": "vllm", "engine_version": ENGINE_VERSION, "models_dir": models_dir, "port": PORT}
    plan = _plan.build_plan(load_catalog(), MODEL, facts, host, wishes)
    # Exactly what roles/vllm_docker runs in its container (launcher args, the plan's argv, no extra flags)
    # and its environment; the key is added separately.
    spec = _launch.launch_spec("vllm", plan, {"launcher": "api_server", "api_key": True})
    return {"plan": plan, "argv": [python] + spec["argv"], "env": spec["env"]}


def cmd_argv(ns) -> int:
    d = Path(ns.smi_dir)
    facts = gpu_facts(
        (d / "nvidia-smi-q.xml").read_text(), (d / "query-gpu.csv").read_text(), (d / "topo.txt").read_text()
    )
    print(json.dumps(plan_and_argv(facts, ns.python, ns.models_dir), indent=1, default=str))
    return 0


# --- on the GPU machine ---------------------------------------------------------------------------


def sh(cmd: list, timeout=60) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, LC_ALL="C")
        ).stdout
    except Exception as exc:  # a missing tool is a recording of its own
        return f"<{cmd[0]} failed: {exc}>"


def pci_listing() -> str:
    lines = ["address vendor device class subsystem_vendor subsystem_device driver"]
    base = Path("/sys/bus/pci/devices")
    for dev in sorted(base.iterdir()) if base.exists() else []:

        def rd(name):
            try:
                return (dev / name).read_text().strip()
            except OSError:
                return "-"

        driver = os.path.basename(os.readlink(dev / "driver")) if (dev / "driver").exists() else "-"
        lines.append(
            " ".join(
                [
                    dev.name,
                    rd("vendor"),
                    rd("device"),
                    rd("class"),
                    rd("subsystem_vendor"),
                    rd("subsystem_device"),
                    driver,
                ]
            )
        )
    return "\n".join(lines) + "\n"


def http(method, url, key=None, body=None, timeout=30, raw_lines=None):
    """(status, headers dict, text) for any status; raw_lines: read a stream line by line (max lines)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")
    with resp:
        if raw_lines:
            lines = []
            for line in resp:
                lines.append([round(time.monotonic(), 4), line.decode("utf-8", "replace")])
            return resp.status, dict(resp.headers), lines
        return resp.status, dict(resp.headers), resp.read().decode("utf-8", "replace")


def tcp(port) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


LOG_KEEP = re.compile(
    r"(GiB|KV cache|memory|Memory|took|seconds|Starting vLLM|version|non-default args|Available routes|"
    r"Application startup|Uvicorn running|CUDA graph|torch.compile|compil|backend|attention|Attention|"
    r"Loading|Model loading|Resolved architecture|max_model_len|Maximum concurrency|ERROR|Error|Traceback|WARNING)"
)


def trim_log(text: str, key: str, limit=60_000) -> str:
    text = text.replace(key, "<API_KEY>") if key else text
    keep = [ln for ln in text.splitlines() if LOG_KEEP.search(ln) and "Route:" not in ln]
    out = "\n".join(keep) + "\n"
    return out[-limit:]


def log_figures(text: str) -> dict:
    def num(pattern, cast=float):
        m = re.search(pattern, text)
        return cast(m.group(1).replace(",", "")) if m else None

    return {
        "kv_cache_tokens": num(r"GPU KV cache size: ([\d,]+) tokens", int),
        "available_kv_cache_gib": num(r"Available KV cache memory: ([\d.]+) GiB"),
        "max_concurrency": num(r"Maximum concurrency for [\d,]+ tokens per request: ([\d.,]+)x"),
        "model_load_gib": num(r"Model loading took ([\d.]+) GiB"),
        "memory_lines": [ln.strip()[-300:] for ln in text.splitlines() if "GiB" in ln][:40],
    }


def metrics_names(text: str) -> list:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
    return sorted(names)


def metric_lines(text: str, names) -> list:
    return [ln for ln in text.splitlines() if not ln.startswith("#") and ln.split("{")[0].split(" ")[0] in names]


def verify(base: str, key: str, served: str, skip: list, **over) -> dict:
    """Our verifier, as the openai_endpoint_info module runs it (module_utils called directly)."""
    collection_path()
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _openai

    params = dict(
        base_url=base,
        api_key=key,
        validate_certs=True,
        request_timeout=60.0,
        served_model_name=served,
        engine="vllm",
        health_path="/health",
        timeout=120.0,
        sleep=0.2,
        expect_reasoning="append_think",
        max_tokens=64,
        tool_call=True,
        stream=True,
        stream_idle_timeout=30.0,
        skip_checks=skip,
    )
    params.update(over)
    _openai.check_options(params)
    verifier = _openai.Verifier(params, _openai.HttpClient(base, key, True))
    try:
        return {"ok": True, "result": verifier.run()}
    except _openai.VerifyError as exc:
        return {
            "ok": False,
            "stage": exc.stage,
            "reason": exc.reason,
            "message": exc.message,
            "status": exc.status,
            "body": exc.body,
            "stages": verifier.stages,
        }


def cmd_run(ns) -> int:
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = {"engine": f"vllm {ENGINE_VERSION}", "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    collection_path()
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _gpu

    if ns.smi_dir:  # a dry run on a machine without a GPU: a recording stands in for nvidia-smi
        d = Path(ns.smi_dir)
        smi_xml, csv, topo = ((d / f).read_text() for f in ("nvidia-smi-q.xml", "query-gpu.csv", "topo.txt"))
    else:
        smi_xml = sh(["nvidia-smi", "-q", "-x"])
        csv, topo = sh(["nvidia-smi"] + _gpu.QUERY_ARGS), sh(["nvidia-smi", "topo", "-m"])
    (out / "nvidia-smi-q.xml").write_text(smi_xml)
    rec["nvidia_smi_query_gpu"], rec["nvidia_smi_topo"] = csv, topo
    (out / "pci-devices.txt").write_text(pci_listing())
    facts = gpu_facts(smi_xml, csv, topo)
    launch = plan_and_argv(facts, sys.executable, ns.models_dir)
    plan = launch["plan"]
    if ns.launcher:  # a dry run against another server with vLLM's command line (the engine simulator)
        from ansible_collections.fleetserve.minimax.plugins.module_utils import _launch

        launcher_args = _launch.VLLM_LAUNCHERS["api_server"][1]
        launch["argv"] = [sys.executable] + ns.launcher.split() + launch["argv"][len(launcher_args) + 1 :]
    rec["gpu_facts"] = facts
    rec["plan"] = {
        k: plan[k]
        for k in (
            "model",
            "served_model_name",
            "engine",
            "engine_version",
            "gpu_name",
            "tensor_parallel_size",
            "max_context",
            "mem_fraction",
            "kv_capacity_tokens",
            "memory",
            "engine_args",
            "engine_env",
            "reasoning_parser",
            "tool_call_parser",
        )
    }
    rec["argv"] = launch["argv"]
    make_tiny_m2.write(Path(plan["model_dir"]))

    key = "fs-" + secrets.token_hex(16)
    env = dict(os.environ, **launch["env"], **MACHINE_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in ns.site)
    env["VLLM_API_KEY"] = key
    rec["env_names"] = sorted(set(launch["env"]) | set(MACHINE_ENV) | {"PYTHONPATH", "VLLM_API_KEY"})
    log_path = Path(ns.log)
    base = f"http://127.0.0.1:{plan['port']}"
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(launch["argv"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rec["pid"] = proc.pid
    warmup, last, ready_at, health = [], None, None, {}
    try:
        while time.monotonic() - t0 < ns.ready_timeout:
            if proc.poll() is not None:
                rec["exited_rc"] = proc.returncode
                break
            state = {"tcp": tcp(plan["port"])}
            if state["tcp"]:
                try:
                    status, headers, body = http("GET", base + "/health", timeout=5)
                    state.update(status=status, body=body[:200], content_type=headers.get("content-type"))
                except Exception as exc:  # accepted but no HTTP answer yet
                    state.update(status=None, error=type(exc).__name__)
            if state != last:
                warmup.append(dict(state, t_s=round(time.monotonic() - t0, 2)))
                last = state
            if state.get("status") == 200:
                ready_at = time.monotonic() - t0
                health = state
                break
            time.sleep(0.5)
        rec["health_during_warmup"] = warmup
        rec["time_to_ready_s"] = round(ready_at, 1) if ready_at is not None else None
        if ready_at is not None:
            rec["health_ready"] = health
            served = plan["served_model_name"]
            rec["answers"] = answers(base, key, served)
            rec["verify_skip"] = verify(base, key, served, ["shape", "tool_call"])
            rec["verify_strict"] = verify(base, key, served, [])
            rec["verify_no_key_given"] = verify(
                base, None, served, ["shape", "tool_call"], tool_call=False, stream=False
            )
            rec["nvidia_smi_while_serving"] = sh(["nvidia-smi", "--query-gpu=memory.used,memory.total", "--format=csv"])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        rec["stop_rc"] = proc.returncode
        text = log_path.read_text(errors="replace")
        rec["log_figures"] = log_figures(text)
        (out / "vllm-start.log").write_text(trim_log(text, key))
        (out / "vllm-full.log").write_text(text.replace(key, "<API_KEY>")[-4_000_000:])
        blob = json.dumps(rec, indent=1, default=str).replace(key, "<API_KEY>")
        (out / "recordings.json").write_text(blob)
    print(
        json.dumps(
            {
                "time_to_ready_s": rec.get("time_to_ready_s"),
                "kv": rec["log_figures"]["kv_cache_tokens"],
                "plan_kv": plan["kv_capacity_tokens"],
                "exited_rc": rec.get("exited_rc"),
            }
        )
    )
    return 0 if ready_at is not None else 1


def answers(base: str, key: str, served: str) -> dict:
    collection_path()
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _openai

    a = {}

    def rec(name, method, path, k=None, body=None, **kw):
        try:
            status, headers, text = http(method, base + path, key=k, body=body, **kw)
            a[name] = {
                "method": method,
                "path": path,
                "status": status,
                "content_type": headers.get("content-type") or headers.get("Content-Type"),
                "body": text,
            }
        except Exception as exc:
            a[name] = {"method": method, "path": path, "error": repr(exc)}

    rec("health", "GET", "/health")
    rec("ping", "GET", "/ping")
    rec("version", "GET", "/version")
    rec("models_no_key", "GET", "/v1/models")
    rec("models_wrong_key", "GET", "/v1/models", k="wrong-key")
    rec("chat_no_key", "POST", "/v1/chat/completions", body=_openai.chat_request(served, 8))
    rec("models", "GET", "/v1/models", k=key)
    rec("chat", "POST", "/v1/chat/completions", k=key, body=_openai.chat_request(served, 32))
    rec(
        "chat_stream",
        "POST",
        "/v1/chat/completions",
        k=key,
        body=_openai.chat_request(served, 16, stream=True),
        raw_lines=True,
    )
    rec("chat_tools", "POST", "/v1/chat/completions", k=key, body=_openai.chat_request(served, 32, tools=True))
    rec("chat_unknown_model", "POST", "/v1/chat/completions", k=key, body=_openai.chat_request("no-such-model", 8))
    rec("chat_too_long", "POST", "/v1/chat/completions", k=key, body=_openai.chat_request(served, 100000))
    rec("metrics", "GET", "/metrics")
    rec("metrics_after_load", "GET", "/metrics")
    m = a.get("metrics_after_load", {}).get("body") or ""
    a["metrics_names"] = metrics_names(m)
    a["metrics_selected"] = metric_lines(
        m,
        {
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "vllm:cache_config_info",
        },
    )
    for name in ("metrics", "metrics_after_load"):
        a[name]["body"] = a[name].get("body", "")[:2000]
    return a


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("argv")
    a.add_argument("--smi-dir", default=str(ROOT / "tests" / "fixtures" / "nvidia-smi" / "h200-x1"))
    a.add_argument("--python", default="python3")
    a.add_argument("--models-dir", default="/root/models")
    r = sub.add_parser("run")
    r.add_argument("--site", action="append", default=[], help="directories for the engine's PYTHONPATH")
    r.add_argument("--out", required=True)
    r.add_argument("--log", default="/root/vllm.log")
    r.add_argument("--models-dir", default="/root/models")
    r.add_argument("--ready-timeout", type=float, default=420)
    r.add_argument("--smi-dir", default="", help="read nvidia-smi from this recording (dry runs)")
    r.add_argument("--launcher", default="", help="instead of '-m vllm.entrypoints.openai.api_server' (dry runs)")
    ns = ap.parse_args(argv)
    return cmd_argv(ns) if ns.cmd == "argv" else cmd_run(ns)


if __name__ == "__main__":
    sys.exit(main())
