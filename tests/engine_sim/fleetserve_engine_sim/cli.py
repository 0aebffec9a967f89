"""Read an engine's command line (vLLM or SGLang spelling) into a SimConfig.

The simulator accepts every flag the real engine would (unknown ones are ignored: the contract tests,
not the simulator, prove the flags are valid) and reads only those that shape its behaviour.
Behaviour switches for tests come from ``--sim-*`` flags (removed before the engine argv is read) or
from ``FLEETSERVE_SIM_*`` environment variables, so a unit under test needs no change to misbehave.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field

FAILURES = ("none", "crash", "hang", "crash-after-ready")


@dataclass
class SimConfig:
    engine: str
    model: str
    served_model_name: str
    host: str
    port: int
    api_keys: list = field(default_factory=list)
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    auto_tool_choice: bool = False
    max_model_len: int = 196608
    enable_metrics: bool = True
    node_rank: int = 0
    nnodes: int = 1
    startup_s: float = 2.0
    failure: str = "none"
    crash_after_s: float = 1.0
    version: str = "0.0.0"
    latency_s: float = 0.0
    grace_s: float = 30.0
    access_log: bool = False
    ssl_certfile: str | None = None  # both engines' --ssl-certfile/--ssl-keyfile: serve HTTPS
    ssl_keyfile: str | None = None
    argv: list = field(default_factory=list)


def _split_sim_flags(argv):
    """Return (engine argv, sim overrides) with every ``--sim-x value`` pair taken out."""
    rest, sim = [], {}
    it = iter(argv)
    for arg in it:
        if arg.startswith("--sim-"):
            key, _, value = arg[len("--sim-") :].partition("=")
            sim[key.replace("-", "_")] = value if _ else next(it, "")
        else:
            rest.append(arg)
    return rest, sim


def _normalise_underscores(argv):
    # vLLM's FlexibleArgumentParser accepts --max_model_len for --max-model-len; mirror that.
    return [a.replace("_", "-") if a.startswith("--") and "=" not in a else a for a in argv]


def _vllm(argv):
    p = argparse.ArgumentParser(prog="vllm serve", add_help=False)
    p.add_argument("model_tag", nargs="?")
    p.add_argument("--model")
    p.add_argument("--served-model-name", nargs="+")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", nargs="+", action="extend", default=[])
    p.add_argument("--tool-call-parser")
    p.add_argument("--reasoning-parser")
    p.add_argument("--enable-auto-tool-choice", action="store_true")
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--ssl-certfile")
    p.add_argument("--ssl-keyfile")
    if argv[:1] == ["serve"]:
        argv = argv[1:]
        serve = True
    else:
        serve = False
    ns, _ = p.parse_known_args(_normalise_underscores(argv))
    # `vllm serve X` maps the positional to the model; the api_server module ignores it and serves
    # its default model, the pitfall that makes the roles always pass --model.
    model = ns.model or (ns.model_tag if serve else None) or "Qwen/Qwen3-0.6B"
    keys = list(ns.api_key) or ([os.environ["VLLM_API_KEY"]] if os.environ.get("VLLM_API_KEY") else [])
    return dict(
        model=model,
        served_model_name=(ns.served_model_name or [model])[0],
        host=ns.host or "0.0.0.0",
        port=ns.port,
        api_keys=keys,
        tool_call_parser=ns.tool_call_parser,
        reasoning_parser=ns.reasoning_parser,
        auto_tool_choice=ns.enable_auto_tool_choice,
        max_model_len=ns.max_model_len or 196608,
        enable_metrics=True,
        ssl_certfile=ns.ssl_certfile,
        ssl_keyfile=ns.ssl_keyfile,
    )


def _read_config(path):
    """SGLang's --config: a flat YAML mapping merged into the argv (the CLI wins). Flat `key: value` only."""
    if not path.endswith((".yaml", ".yml")):
        raise ValueError(f"engine-sim: --config {path} must be a .yaml or .yml file (SGLang's rule)")
    args = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#") or line == "---":
                continue
            key, rest = _yaml_scalar(line)
            if not rest.startswith(":"):
                raise ValueError(f"engine-sim: --config {path}: not a flat `key: value` line: {line[:40]!r}")
            value, tail = _yaml_scalar(rest[1:].strip())
            if tail.strip():
                raise ValueError(f"engine-sim: --config {path}: trailing text after a value")
            args += ["--" + key.replace("_", "-"), value]
    return args


def _yaml_scalar(text):
    """(scalar, rest) of a YAML flow scalar at the start of text: double-quoted (JSON-compatible escapes, what
    yaml.safe_dump writes for printable ASCII), single-quoted ('' is a quote) or plain (up to ': ' or the end)."""
    if text.startswith('"'):
        decoder = json.JSONDecoder()
        value, end = decoder.raw_decode(text)
        return value, text[end:].lstrip()
    if text.startswith("'"):
        i, out = 1, []
        while i < len(text):
            if text[i] == "'":
                if text[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                return "".join(out), text[i + 1 :].lstrip()
            out.append(text[i])
            i += 1
        raise ValueError("engine-sim: --config: unterminated single-quoted scalar")
    key_end = text.find(":")
    if key_end >= 0 and (key_end + 1 == len(text) or text[key_end + 1] == " "):
        return text[:key_end].strip(), text[key_end:]
    return text.strip(), ""


def _sglang(argv):
    if "--config" in argv:
        at = argv.index("--config")
        argv = _read_config(argv[at + 1]) + argv[:at] + argv[at + 2 :]
    p = argparse.ArgumentParser(prog="sglang.launch_server", add_help=False)
    p.add_argument("--model-path", "--model", required=True)
    p.add_argument("--served-model-name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--api-key")
    p.add_argument("--tool-call-parser")
    p.add_argument("--reasoning-parser")
    p.add_argument("--context-length", type=int)
    p.add_argument("--enable-metrics", action="store_true")
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--ssl-certfile")
    p.add_argument("--ssl-keyfile")
    ns, _ = p.parse_known_args(argv)
    return dict(
        model=ns.model_path,
        served_model_name=ns.served_model_name or ns.model_path,
        host=ns.host,
        port=ns.port,
        api_keys=[ns.api_key] if ns.api_key else [],
        tool_call_parser=ns.tool_call_parser,
        reasoning_parser=ns.reasoning_parser,
        auto_tool_choice=bool(ns.tool_call_parser),
        max_model_len=ns.context_length or 196608,
        enable_metrics=ns.enable_metrics,
        nnodes=ns.nnodes,
        node_rank=ns.node_rank,
        ssl_certfile=ns.ssl_certfile,
        ssl_keyfile=ns.ssl_keyfile,
    )


def parse(engine: str, argv: list, environ=None) -> SimConfig:
    """Build the simulator's configuration from an engine argv; raise ValueError on a bad switch."""
    environ = os.environ if environ is None else environ
    argv, sim = _split_sim_flags(list(argv))
    values = _vllm(argv) if engine == "vllm" else _sglang(argv)

    def knob(name, default):
        return sim.get(name, environ.get("FLEETSERVE_SIM_" + name.upper(), default))

    failure = knob("failure", "none")
    if failure not in FAILURES:
        raise ValueError(f"engine-sim: FLEETSERVE_SIM_FAILURE={failure!r} is not one of {', '.join(FAILURES)}")
    version = knob("version", "0.0.0")
    # FLEETSERVE_SIM_FAILURE_VERSION limits the failure to one release: a rollout to it fails, and the
    # rollback to the release before, under the same environment, serves again.
    only = knob("failure_version", "")
    if only and only != version:
        failure = "none"
    return SimConfig(
        engine=engine,
        startup_s=float(knob("startup_s", "2")),
        failure=failure,
        crash_after_s=float(knob("crash_after_s", "1")),
        version=version,
        latency_s=float(knob("latency_s", "0")),
        grace_s=float(knob("grace_s", "30")),
        access_log=knob("access_log", "0") not in ("", "0", "false"),
        argv=argv,
        **values,
    )
