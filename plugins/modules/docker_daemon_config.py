#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge options into Docker's daemon.json without dropping anyone else's keys."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_config
short_description: Merge options into Docker's daemon.json, keeping every key already there
description:
  - Reads O(path) (C(/etc/docker/daemon.json)), deep-merges O(config) into it and writes the result
    back only when a value really changes.
  - Keys the file already has and O(config) does not mention are kept, at every depth, so several
    roles (and the operator) can each own their own keys in one file.
  - Fails with a clear message, before writing anything, when the current file is not valid JSON.
  - Reports which top-level keys changed and whether C(systemctl reload docker) applies all of them,
    so callers restart dockerd (and its containers) only when a reload cannot do.
version_added: 0.1.0
author: fleetserve maintainers (@fleetserve)
options:
  path:
    description: The daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  config:
    description:
      - Daemon options to set. Nested mappings merge into what is there; scalars and lists replace it.
    type: dict
    required: true
  mode:
    description: Permissions of the file when it is written.
    type: str
    default: "0644"
attributes:
  check_mode:
    support: full
    description: Computes and reports the merge without writing.
  diff_mode:
    support: full
    description: Shows the file before and after the merge.
  idempotent:
    support: full
    description: A second run with the same O(config) reports no change.
notes:
  - The file is rewritten with sorted keys and a two-space indent when it changes; a file that is
    already equal in content but laid out differently is left untouched.
"""

EXAMPLES = r"""
- name: Docker | Merge log rotation and live-restore into daemon.json
  fleetserve.minimax.docker_daemon_config:
    config:
      live-restore: true
      log-driver: json-file
      log-opts:
        max-size: 100m
        max-file: "3"
  register: docker_daemon

- name: NVIDIA container toolkit | Register the nvidia runtime with Docker
  fleetserve.minimax.docker_daemon_config:
    config:
      runtimes:
        nvidia:
          path: nvidia-container-runtime
          args: []
"""

RETURN = r"""
config:
  description: The merged daemon configuration (what the file holds after this task).
  returned: success
  type: dict
  sample: {"live-restore": true, "log-driver": "json-file"}
changed_keys:
  description: Top-level keys whose value changed.
  returned: success
  type: list
  elements: str
  sample: ["runtimes"]
reload_sufficient:
  description: True when every changed key is one dockerd re-reads on SIGHUP, so a reload suffices.
  returned: success
  type: bool
  sample: true
"""

# Ansible modules import after their documentation strings.
import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes, to_text  # noqa: E402

from ansible_collections.fleetserve.minimax.plugins.module_utils._daemon_json import plan  # noqa: E402

ARGUMENT_SPEC = {
    "path": {"type": "path", "default": "/etc/docker/daemon.json"},
    "config": {"type": "dict", "required": True},
    "mode": {"type": "str", "default": "0644"},
}


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        return to_text(handle.read(), errors="surrogate_or_strict")


def run(module):
    path = module.params["path"]
    current = _read(path)
    result = plan(current, module.params["config"], path)
    out = {
        "changed": result["changed"],
        "config": result["after"],
        "changed_keys": result["changed_keys"],
        "reload_sufficient": result["reload_sufficient"],
        "diff": {"before": current or "", "after": result["after_text"], "before_header": path, "after_header": path},
    }
    if result["changed"] and not module.check_mode:
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".daemon.json.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(result["after_text"]))
        module.atomic_move(tmp, path)
    if os.path.exists(path):
        # In check mode this only reports, like every file module.
        out["changed"] = module.set_mode_if_different(path, module.params["mode"], out["changed"])
    return out


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**run(module))
    except ValueError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
