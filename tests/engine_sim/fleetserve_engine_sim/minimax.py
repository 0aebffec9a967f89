"""MiniMax output shapes: the raw text the model would emit and what each engine's parsers make of it.

Raw M2.x output: reasoning, ``</think>``, then either the answer or ``<minimax:tool_call>`` XML (the chat
template injects the opening ``<think>``, so the raw text does not start with it). Raw M1 tool calls are
``<tool_calls>`` with one JSON object per line.
"""

from __future__ import annotations

import json
import re
import uuid

# Parser names per engine. Append-think keeps <think>...</think> in `content`; the others split it
# into `reasoning_content`.
APPEND_THINK = {"minimax_m2_append_think", "minimax-append-think"}
SEPARATE = {"minimax_m2", "minimax", "deepseek_r1", "qwen3"}
M2_TOOL_PARSERS = {"minimax_m2", "minimax-m2"}
M1_TOOL_PARSERS = {"minimax"}

_INVOKE = re.compile(r'<invoke name="([^"]+)">(.*?)</invoke>', re.S)
_PARAM = re.compile(r'<parameter name="([^"]+)">(.*?)</parameter>', re.S)


def _last_user_text(messages):
    for msg in reversed(messages or []):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # guide A sends content as a list of text parts
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _example_value(name, schema):
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return "San Francisco" if "location" in name or "city" in name else "example"


def _tool_arguments(tool):
    params = (tool.get("function") or {}).get("parameters") or {}
    props = params.get("properties") or {}
    wanted = params.get("required") or list(props)
    return {name: _example_value(name, props.get(name, {})) for name in wanted}


def raw_output(request, tool_parser, model):
    """The text a MiniMax model would generate for this request (deterministic)."""
    question = _last_user_text(request.get("messages"))[:80]
    reasoning = f"The user asked: {question!r}. A short, direct answer will do."
    tools = request.get("tools") or []
    if tools and request.get("tool_choice", "auto") != "none":
        tool = tools[0]
        name = tool["function"]["name"]
        args = _tool_arguments(tool)
        if tool_parser in M1_TOOL_PARSERS:
            call = "<tool_calls>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_calls>"
            return f"<think>{reasoning}</think>\n" + call
        params = "".join(
            f'<parameter name="{k}">{v if isinstance(v, str) else json.dumps(v)}</parameter>\n' for k, v in args.items()
        )
        call = f'<minimax:tool_call>\n<invoke name="{name}">\n{params}</invoke>\n</minimax:tool_call>'
        return f"{reasoning}\n</think>\n\n{call}"
    return f"{reasoning}\n</think>\n\nHello from engine-sim, serving {model}."


def _typed(value, schema):
    kind = schema.get("type", "string")
    if kind in ("integer", "number", "boolean", "array", "object"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_m2_calls(text, tools):
    schemas = {t["function"]["name"]: (t["function"].get("parameters") or {}).get("properties", {}) for t in tools}
    calls = []
    for name, body in _INVOKE.findall(text):
        props = schemas.get(name, {})
        args = {k: _typed(v.strip(), props.get(k, {})) for k, v in _PARAM.findall(body)}
        calls.append((name, args))
    return calls


def _parse_m1_calls(text):
    block = text.split("<tool_calls>", 1)[1].split("</tool_calls>", 1)[0]
    return [(obj["name"], obj["arguments"]) for obj in map(json.loads, filter(None, block.strip().splitlines()))]


def parse_output(raw, request, tool_parser, reasoning_parser):
    """Apply the engine's parsers: returns (content, reasoning_content, tool_calls, finish_reason)."""
    tools = request.get("tools") or []
    calls = []
    text = raw
    if tool_parser in M2_TOOL_PARSERS and "<minimax:tool_call>" in raw:
        text, _, rest = raw.partition("<minimax:tool_call>")
        calls = _parse_m2_calls(rest, tools)
    elif tool_parser in M1_TOOL_PARSERS and "<tool_calls>" in raw:
        text = raw.partition("<tool_calls>")[0]
        calls = _parse_m1_calls(raw)
    reasoning = None
    if reasoning_parser in APPEND_THINK:
        text = "<think>" + text
    elif reasoning_parser in SEPARATE and "</think>" in text:
        reasoning, _, text = text.partition("</think>")
        reasoning = reasoning.replace("<think>", "").strip()
        text = text.lstrip("\n")
    tool_calls = [
        {
            "id": "call_" + uuid.uuid4().hex[:24],
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for name, args in calls
    ]
    content = text if (text.strip() or not tool_calls) else None
    return content, reasoning, tool_calls, ("tool_calls" if tool_calls else "stop")
