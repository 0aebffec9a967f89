"""Feed command lines to a REAL engine's own argument parser; runs inside a parser venv.

usage: <venv>/bin/python check_engine_cli.py {vllm|sglang} < cases.json > results.json
cases: [{"id": ..., "argv": [...]}]   argv = what follows `python -m <entrypoint module>`
results: {"version": ..., "results": {id: {"ok": bool, "error": str, "api_key": str|null, "checks": [...]}}}

The engine is imported once and every case is parsed in this one process (vLLM's import alone takes
7-10 s). Besides argparse, vLLM's open-ended names (--quantization, --tool-call-parser,
--reasoning-parser) are checked against its registries: vLLM itself rejects them only at start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import sys


def _vllm_checker():
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")  # newer vLLM: else "Failed to infer device type"
    import vllm.platforms as plat

    if plat._current_platform is None:  # 0.9.x ignores VLLM_TARGET_DEVICE; pin CPU before vllm.config binds it
        from vllm.platforms.cpu import CpuPlatform

        plat._current_platform = CpuPlatform()
    try:
        from vllm.entrypoints.common.cli_args import make_arg_parser, validate_parsed_serve_args
    except ImportError:
        from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args
    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:
        from vllm.utils import FlexibleArgumentParser
    try:
        from vllm.tool_parsers import ToolParserManager
    except ImportError:
        from vllm.entrypoints.openai.tool_parsers import ToolParserManager
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.reasoning import ReasoningParserManager

    def names(manager, attr):
        return set(manager.list_registered()) if hasattr(manager, "list_registered") else set(getattr(manager, attr))

    tool_parsers = names(ToolParserManager, "tool_parsers")
    reasoning_parsers = names(ReasoningParserManager, "reasoning_parsers")

    def check(argv):
        ns = make_arg_parser(FlexibleArgumentParser(prog="vllm serve")).parse_args(argv)
        validate_parsed_serve_args(ns)
        if ns.quantization and ns.quantization not in QUANTIZATION_METHODS:
            raise ValueError(f"unknown --quantization {ns.quantization!r}")
        if ns.tool_call_parser and ns.tool_call_parser not in tool_parsers:
            raise ValueError(f"unknown --tool-call-parser {ns.tool_call_parser!r} (known: {sorted(tool_parsers)})")
        reasoning = getattr(ns, "reasoning_parser", None)
        if reasoning and reasoning not in reasoning_parsers:
            raise ValueError(f"unknown --reasoning-parser {reasoning!r} (known: {sorted(reasoning_parsers)})")
        key = ns.api_key[0] if isinstance(ns.api_key, list) and ns.api_key else ns.api_key
        return ns, key

    return check


def _sglang_checker():
    from sglang.srt.server_args import ServerArgs, prepare_server_args

    try:
        from sglang.srt.utils.server_args_config_parser import ConfigArgumentMerger
    except ImportError:
        from sglang.srt.server_args_config_parser import ConfigArgumentMerger

    def check(argv):
        parser = argparse.ArgumentParser(prog="sglang.launch_server")
        ServerArgs.add_cli_args(parser)
        # --config FILE is how the role passes the API key: merge it with SGLang's own merger.
        merged = ConfigArgumentMerger(parser).merge_config_with_args(argv) if "--config" in argv else argv
        ns = parser.parse_args(merged)  # unknown flag, bad choice or bad type: SystemExit(2)
        try:
            ns = prepare_server_args(argv)  # + ServerArgs.__post_init__ cross-field checks
        except (RuntimeError, ModuleNotFoundError) as exc:  # 0.5.4.post1 needs a GPU for these
            return ns, ns.api_key, f"post-init checks need a GPU here: {exc}"
        return ns, ns.api_key, None

    return check


def main():
    engine = sys.argv[1]
    cases = json.load(sys.stdin)
    check = _vllm_checker() if engine == "vllm" else _sglang_checker()
    results = {}
    for case in cases:
        err = io.StringIO()
        result = {"ok": False, "error": "", "api_key": None, "note": None}
        try:
            with contextlib.redirect_stderr(err):
                out = check(case["argv"])
            result.update(ok=True, api_key=out[1], note=out[2] if len(out) > 2 else None)
            result["tls"] = [getattr(out[0], "ssl_certfile", None), getattr(out[0], "ssl_keyfile", None)]
        except SystemExit as exc:
            result["ok"] = not exc.code
            result["error"] = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
        except Exception as exc:  # noqa: BLE001 - every rejection is a result, not a crash
            result["error"] = f"{type(exc).__name__}: {exc}"
        results[case["id"]] = result
    json.dump({"version": importlib.metadata.version(engine), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
