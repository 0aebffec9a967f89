# -*- coding: utf-8 -*-
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model catalog (roles/preflight/vars/models.yml): loading, checking and version rules.

Private to the collection (no API promise). Pure functions; bad input raises CatalogError, a
ValueError whose message names the fix. Runs on the controller (bench, CLI) and on targets (the
serving_plan module), so nothing here may need more than the standard library, except load_catalog,
which imports PyYAML lazily and only runs on the controller.
"""

from __future__ import annotations

import re

CATALOG_RELPATH = "roles/preflight/vars/models.yml"
ENGINES = ("vllm", "sglang")

MODEL_KEYS = {
    "hf_repo": str,
    "revision": str,
    "architecture": str,
    "weights_bytes": int,
    "gpu_weights_bytes": int,
    "num_hidden_layers": int,
    "full_attention_layers": int,
    "num_attention_heads": int,
    "num_key_value_heads": int,
    "head_dim": int,
    "hidden_size": int,
    "intermediate_size": int,
    "num_experts_per_tok": int,
    "vocab_size": int,
    "kv_bytes_per_token": int,
    "linear_state_bytes_per_seq": int,
    "max_context": int,
    "default_context": int,
    "default_engine": str,
    "engines": dict,
}
ENGINE_KEYS = {
    "floor": str,
    "default": str,
    "recommended": str,
    "flags": list,
    "tool_call_parser": str,
    "reasoning_parsers": dict,
}

_VERSION_RE = re.compile(r"^v?(\d+(?:\.\d+)*)(?:\.?post(\d+))?$")


class CatalogError(ValueError):
    """A catalog entry or a version string is wrong; the message says what to change."""


def parse_version(text) -> tuple:
    """'0.5.4.post1' -> ((0, 5, 4, 0), 1); comparable tuples, release padded to 4 parts."""
    match = _VERSION_RE.match(str(text).strip())
    if not match:
        raise CatalogError(
            f"version {text!r} is not a release number like 0.9.2 or 0.5.4.post1; write the engine's exact release"
        )
    release = tuple(int(p) for p in match.group(1).split("."))
    release = (release + (0, 0, 0, 0))[:4]
    return release, int(match.group(2) or 0)


def version_at_least(version, floor) -> bool:
    return parse_version(version) >= parse_version(floor)


def load_catalog(path) -> dict:
    """Read the catalog file and return {"models": ..., "engine_hosts": ...}, checked."""
    import yaml  # controller only: targets get the catalog as module arguments

    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict) or "__preflight_catalog" not in data:
        raise CatalogError(f"{path} has no __preflight_catalog mapping; restore it from git")
    catalog = {"models": data["__preflight_catalog"], "engine_hosts": data.get("__preflight_engine_hosts", {})}
    check_catalog(catalog)
    return catalog


def check_catalog(catalog: dict) -> None:
    """Raise CatalogError on the first entry that would make the planner guess."""
    for name in catalog["models"]:
        check_entry(name, model_entry(catalog, name))
    for engine, rows in catalog["engine_hosts"].items():
        for row in rows:
            parse_version(row["from"])
            for key in ("python", "glibc", "driver"):
                if key not in row:
                    raise CatalogError(
                        f"catalog __preflight_engine_hosts.{engine} row {row['from']} lacks '{key}'; add it"
                    )


def check_entry(name: str, entry: dict) -> None:
    for key, kind in MODEL_KEYS.items():
        if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
            raise CatalogError(
                f"catalog entry {name}: '{key}' must be a {kind.__name__}; fix roles/preflight/vars/models.yml"
            )
    if entry["default_engine"] not in entry["engines"]:
        raise CatalogError(f"catalog entry {name}: default_engine {entry['default_engine']!r} is not under engines")
    if entry["default_context"] > entry["max_context"]:
        raise CatalogError(f"catalog entry {name}: default_context exceeds max_context")
    expected_kv = entry["full_attention_layers"] * entry["num_key_value_heads"] * entry["head_dim"] * 2 * 2
    if entry["kv_bytes_per_token"] != expected_kv:
        raise CatalogError(
            f"catalog entry {name}: kv_bytes_per_token {entry['kv_bytes_per_token']} disagrees with "
            f"layers x KV heads x head_dim x 2 x 2 B = {expected_kv}; fix one of them"
        )
    for engine, spec in entry["engines"].items():
        if engine not in ENGINES:
            raise CatalogError(f"catalog entry {name}: unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
        for key, kind in ENGINE_KEYS.items():
            if not isinstance(spec.get(key), kind):
                raise CatalogError(f"catalog entry {name}.engines.{engine}: '{key}' must be a {kind.__name__}")
        if not version_at_least(spec["default"], spec["floor"]):
            raise CatalogError(
                f"catalog entry {name}.engines.{engine}: default {spec['default']} is below floor {spec['floor']}"
            )


def model_entry(catalog: dict, model: str) -> dict:
    """The entry for `model`, with the keys of the entry it `inherits` filled in."""
    models = catalog["models"]
    if model not in models:
        raise CatalogError(
            f"model {model!r} is not in the catalog; set preflight_model to one of: {', '.join(sorted(models))}"
        )
    entry = dict(models[model])
    parent = entry.pop("inherits", None)
    if parent is not None:
        if parent not in models or "inherits" in models[parent]:
            raise CatalogError(
                f"catalog entry {model} inherits {parent!r}, which is not a catalog entry without "
                "'inherits' of its own; point it at a complete entry"
            )
        entry = {**models[parent], **entry}
    return entry


def engine_spec(model: str, entry: dict, engine: str) -> dict:
    if engine not in entry["engines"]:
        raise CatalogError(
            f"{model} does not run on {engine}; set preflight_engine to one of: {', '.join(sorted(entry['engines']))}"
        )
    return entry["engines"][engine]


def check_engine_version(model: str, engine: str, spec: dict, version: str) -> None:
    """The version floor (and ceiling, where a later release dropped something the model needs)."""
    if not version_at_least(version, spec["floor"]):
        raise CatalogError(
            f"{engine} {version} is below the floor {spec['floor']} for {model}; "
            f"set preflight_engine_version to {spec['default']} (or any release >= {spec['floor']})"
        )
    below = spec.get("below")
    if below and version_at_least(version, below):
        raise CatalogError(
            f"{engine} {version} cannot serve {model} with tool calls: releases >= {below} dropped its "
            f"'{spec['tool_call_parser']}' tool parser; set preflight_engine_version to {spec['default']}"
        )


def host_requirements(engine_hosts: dict, engine: str, version: str) -> dict | None:
    """The row of __preflight_engine_hosts that applies to this engine version (highest `from` <= version)."""
    rows = [row for row in engine_hosts.get(engine, []) if version_at_least(version, row["from"])]
    return max(rows, key=lambda row: parse_version(row["from"])) if rows else None
