# -*- coding: utf-8 -*-
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets (API keys, the HF token, rsync passwords): one validation, and one writer per file format.

A secret is checked once, before anything is written, and refused with a message that names the variable
and the offending position but never the secret. What passes is written so that each consumer reads back
exactly the bytes given:

  docker --env-file       KEY=VALUE, the value taken verbatim to the end of the line (no quoting at all)
  systemd EnvironmentFile KEY="VALUE" with \\ " $ ` escaped (systemd's double-quote rules)
  YAML (SGLang --config)  a double-quoted YAML scalar (yaml.safe_dump)
  a key file              the bytes, then one newline (readers strip it)

Pure functions; SecretError is a ValueError.
"""

from __future__ import annotations

import ipaddress

# Printable ASCII: what an HTTP header (Authorization: Bearer KEY), an rsync secrets line and every file
# format above carry byte for byte. Control characters (newline, NUL, tab, DEL) would end or split a line.
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))

# What systemd's EnvironmentFile= parser unescapes inside double quotes (SHELL_NEED_ESCAPE); any other
# backslash is kept as it is.
_SYSTEMD_ESCAPE = '\\"`$'


class SecretError(ValueError):
    """A secret that cannot be written safely; the message names the variable, never the value."""


def check_secret(name: str, value) -> str:
    """`value` as a str when it is a secret every consumer reads back byte for byte, else SecretError.

    Refused: a non-string, control characters (newline, carriage return, tab, NUL, DEL), non-ASCII, and
    leading or trailing spaces (HTTP strips them from a header, so the key sent would not be the key set).
    Quotes, $, backslashes, %, # and inner spaces are fine. An empty value is returned as it is (no secret)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SecretError(f"{name} must be a string (got a {type(value).__name__}): quote it in the inventory.")
    for at, char in enumerate(value):
        if char not in _PRINTABLE:
            what = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}.get(
                char, "a control character" if ord(char) < 0x20 or ord(char) == 0x7F else "a non-ASCII character"
            )
            raise SecretError(
                f"{name} holds {what} at position {at + 1} of {len(value)}: a secret must be printable ASCII "
                "(it travels in an HTTP header and one-line files). Write it again without it (a key file may end "
                "with one newline), then re-run. The value is not shown."
            )
    if value != value.strip(" "):
        raise SecretError(
            f"{name} starts or ends with a space: HTTP drops it from the Authorization header, so the engine and "
            "its clients would disagree on the key. Remove the space, then re-run. The value is not shown."
        )
    return value


def check_line(name: str, value: str) -> str:
    """A non-secret value written on one line of an env file: no control characters (a newline would add a
    line, e.g. LD_PRELOAD=...). The value is not secret, but it is not echoed either."""
    for at, char in enumerate(str(value)):
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise SecretError(
                f"{name} holds a control character (newline, tab, NUL...) at position {at + 1}: an env file value is "
                "one line. Remove it, then re-run."
            )
    return str(value)


def docker_env_line(key: str, value: str, name: str = "") -> str:
    """One `docker run --env-file` line (with its newline): docker takes the value verbatim to the end of the
    line, so a checked value needs no quoting (and none is possible)."""
    value = check_secret(name or key, value)
    return f"{key}={value}\n"


def systemd_quote(value: str) -> str:
    """A value in systemd EnvironmentFile= double quotes: \\ " ` $ escaped, nothing else changed."""
    return '"' + "".join("\\" + c if c in _SYSTEMD_ESCAPE else c for c in value) + '"'


def systemd_env_line(key: str, value: str, name: str = "") -> str:
    """One systemd EnvironmentFile= line (with its newline) that systemd reads back as exactly `value`."""
    return f"{key}={systemd_quote(check_secret(name or key, value))}\n"


def yaml_config(mapping: dict, names: dict | None = None) -> str:
    """A YAML mapping of secrets (SGLang's --config file): every value checked, then double-quoted so YAML
    reads back the same string whatever it looks like (true, 0x1f, ~, #...)."""
    import yaml  # only where a YAML file is written (the controller always has PyYAML: Ansible needs it)

    # str(): plain strings for the safe dumper (Ansible hands over tagged str subclasses)
    checked = {str(k): str(check_secret((names or {}).get(k, k), v)) for k, v in mapping.items()}
    return yaml.safe_dump(checked, default_style='"', default_flow_style=False, sort_keys=True, width=1 << 20)


def key_file(value: str, name: str = "the key") -> str:
    """The content of a key file a process reads and strips: the key and one newline."""
    return check_secret(name, value) + "\n"


# --- Who may run without a key --------------------------------------------------------------------------------

ALLOW_VARIABLE = "fleetserve_allow_unauthenticated"


def is_loopback(host: str) -> bool:
    """True when `host` accepts connections from this machine only (127.0.0.0/8, ::1, localhost)."""
    host = str(host or "").strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(what: str, host: str, keyed: bool, allowed: bool, key_variables: str) -> None:
    """Refuse an unauthenticated API on an address other hosts can reach, unless the inventory opted out.

    what: 'the vLLM engine', host: its bind address, keyed: a key is configured, allowed: the value of
    fleetserve_allow_unauthenticated, key_variables: where the key is set for this service."""
    if keyed or allowed or is_loopback(host):
        return
    raise SecretError(
        f"{what} would listen on {host or '0.0.0.0'} without an API key: anyone who reaches the port could use "
        f"the GPUs. Either set an API key ({key_variables}), or, on a network you trust, set "
        f"{ALLOW_VARIABLE}: true in the inventory to serve without one (an engine bound to 127.0.0.1 needs neither)."
    )
