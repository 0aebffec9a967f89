# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one secret rule (plugins/module_utils/_secrets.py) for templates and tasks."""

from __future__ import annotations

DOCUMENTATION = r"""
name: secrets
short_description: Write a secret into a file so its reader gets exactly the bytes given
description:
  - C(secret_line) takes a secret (an API key, a token) and returns it ready for one kind of file, after the one
    check every secret passes (printable ASCII, no control characters such as newlines or NUL, no leading or trailing
    space). A refused secret fails the task with a message that names O(name) and never shows the value.
  - C(secret_problem) takes a secret and returns why it is refused (a message naming O(name), never the value), or
    an empty string when it is fine; preflight tasks fail with it before anything is written.
  - C(secret_exposure) takes an engine's or router's bind address and returns why serving there is refused (no key,
    an address other hosts reach, and C(fleetserve_allow_unauthenticated) not true), or an empty string when it is
    fine (a key is configured, the address is a loopback address, or the inventory opted out).
version_added: 0.3.0
author: fleetserve maintainers (@fleetserve)
options:
  _input:
    description: The secret (C(secret_line)) or the bind address (C(secret_exposure)).
    type: str
    required: true
  format:
    description:
      - C(docker) a C(docker run --env-file) line C(VAR=value) (verbatim to the end of the line);
        C(systemd) a systemd C(EnvironmentFile=) line C(VAR="value") with backslash, double quote, dollar and
        backtick escaped; C(yaml) a one-key YAML mapping with a double-quoted value (SGLang's C(--config) file);
        C(raw) the secret and one newline (a key file).
      - Only for C(secret_line).
    type: str
    choices: [docker, systemd, yaml, raw]
  var:
    description: The environment variable or YAML key to write (not for C(raw)). Only for C(secret_line).
    type: str
  name:
    description: The inventory variable the secret came from, named in a refusal (C(secret_line), C(secret_problem)).
    type: str
"""

EXAMPLES = r"""
- name: Write the router's key for systemd
  ansible.builtin.copy:
    content: "{{ fleetserve_api_key | fleetserve.minimax.secret_line('systemd', 'FLEETSERVE_ROUTER_API_KEY', 'fleetserve_api_key') }}"
    dest: /etc/fleetserve/router/router.env
    mode: "0600"
  no_log: true

- name: Refuse an open router on a public address
  ansible.builtin.fail:
    msg: "{{ __problem }}"
  when: __problem | length > 0
  vars:
    __problem: "{{ '0.0.0.0' | fleetserve.minimax.secret_exposure('The router', fleetserve_api_key | length > 0, false, 'fleetserve_api_key') }}"
"""

RETURN = r"""
_value:
  description: The file content (C(secret_line)), or the refusal message, empty when there is none (C(secret_problem), C(secret_exposure)).
  type: str
"""

# Plugins import after their documentation strings.
from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible.module_utils.parsing.convert_bool import boolean  # noqa: E402

from ansible_collections.fleetserve.minimax.plugins.module_utils import _secrets  # noqa: E402


def secret_line(value, format, var="", name=""):  # pylint: disable=redefined-builtin
    name = name or var or "the secret"
    try:
        if format == "docker":
            return _secrets.docker_env_line(var, value, name)
        if format == "systemd":
            return _secrets.systemd_env_line(var, value, name)
        if format == "yaml":
            return _secrets.yaml_config({var: value}, {var: name})
        if format == "raw":
            return _secrets.key_file(value, name)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None
    raise AnsibleFilterError(f"secret_line: format must be docker, systemd, yaml or raw (got {format!r})")


def secret_problem(value, name="the secret"):
    try:
        _secrets.check_secret(name, value)
    except ValueError as exc:
        return str(exc)
    return ""


def secret_exposure(host, what, keyed, allowed, key_variables):
    try:
        _secrets.check_exposure(
            what, str(host), boolean(keyed, strict=False), boolean(allowed, strict=False), key_variables
        )
    except ValueError as exc:
        return str(exc)
    return ""


class FilterModule:
    def filters(self):
        return {"secret_line": secret_line, "secret_problem": secret_problem, "secret_exposure": secret_exposure}
