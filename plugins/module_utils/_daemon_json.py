"""Pure helpers for merging Docker's /etc/docker/daemon.json.

Several roles add keys to daemon.json (docker_engine: log rotation and live-restore;
nvidia_container_toolkit: the nvidia runtime). Each merges its own keys into what is on disk,
so nothing the operator set by hand is ever dropped (NVIDIA/nvidia-docker #9, geerlingguy #84).
"""

from __future__ import annotations

import json

# Options dockerd re-reads on SIGHUP (`systemctl reload docker`): changing only these never needs a
# restart. From the dockerd reference, "Configuration reload behavior".
RELOADABLE_KEYS = frozenset(
    {
        "debug",
        "labels",
        "live-restore",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "default-runtime",
        "runtimes",
        "authorization-plugins",
        "insecure-registries",
        "registry-mirrors",
        "shutdown-timeout",
        "features",
        "builder",
    }
)


def parse_daemon_json(text: str, path: str) -> dict:
    """Parse the current file; an empty file counts as ``{}`` (dockerd accepts it too)."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "dockerd refuses to start with it. Fix the file by hand (or move it away) and rerun."
        ) from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} must hold a JSON object, not a {type(data).__name__}: "
            "replace its content with {...} of daemon options and rerun."
        )
    return data


def merge(current: dict, wanted: dict) -> dict:
    """Deep-merge ``wanted`` into ``current``: nested objects merge, everything else is replaced.

    Keys present only in ``current`` always survive, at every depth (a user's extra runtime next to
    ``runtimes.nvidia``, a log-opt we don't manage).
    """
    result = dict(current)
    for key, value in wanted.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def changed_keys(before: dict, after: dict) -> list:
    """Top-level keys whose value differs (added, removed or changed)."""
    missing = object()
    return sorted(k for k in set(before) | set(after) if before.get(k, missing) != after.get(k, missing))


def reload_sufficient(keys: list) -> bool:
    """True when a SIGHUP applies every changed key, so running containers never see a restart."""
    return all(k in RELOADABLE_KEYS for k in keys)


def render(config: dict) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline (what diffs and reruns compare)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def plan(current_text: str | None, wanted: dict, path: str) -> dict:
    """Everything the module needs: the merged config, its text, and what changed."""
    if not isinstance(wanted, dict):
        raise ValueError(f"config must be a dict of daemon options, got {type(wanted).__name__}: pass a YAML mapping.")
    before = parse_daemon_json(current_text or "", path)
    after = merge(before, wanted)
    keys = changed_keys(before, after)
    after_text = render(after)
    return {
        "before": before,
        "after": after,
        "after_text": after_text,
        # A semantically equal file in another layout is left alone: rewriting it is a change nobody asked for.
        "changed": current_text is None or bool(keys),
        "changed_keys": keys,
        "reload_sufficient": reload_sufficient(keys),
    }
