#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: launch_spec
short_description: Render everything an engine host runs from a serving plan, or refuse naming the fix
description:
  - Takes the serving plan (the C(preflight_plan) fact of M(fleetserve.minimax.serving_plan)) and the engine role's
    deployment settings, and returns the launch spec the roles C(vllm_docker) and C(sglang_venv) write to the host
    unchanged - the unit's command line, the engine's argv and environment, the unit's names, paths and timeouts,
    the health URL, and the release record (engine, version, model, revision, venv or image, unit, plan and its
    digest; no secrets).
  - The plan decides the model, the release and every engine flag. The settings add the image or venv, the unit and
    container names and extra flags and environment; an extra flag or variable that would re-decide something the
    plan decided (a parallel size, the context, a parser, host, port, V0 engine) is refused, naming the variable to
    change instead. So is a vLLM source-checkout ref that is not a release tag of the plan's vLLM release.
  - Runs on the controller (an action); nothing is read from or written to the host. The rules live in
    C(plugins/module_utils/_launch.py).
version_added: 0.2.0
author: fleetserve maintainers (@fleetserve)
options:
  engine:
    description: The engine the role runs; the plan's C(engine) must be the same.
    type: str
    required: true
    choices: [vllm, sglang]
  plan:
    description: The serving plan (C(preflight_plan)); needed with O(state=present).
    type: dict
    default: {}
  settings:
    description:
      - The role's deployment settings, keyed without the role prefix.
      - Both engines read C(service_name), C(config_dir), C(extra_args), C(extra_env), C(start_timeout_s),
        C(stop_timeout_s), C(release_dir), C(api_key) (true when a key is configured), C(allow_unauthenticated)
        (C(fleetserve_allow_unauthenticated)) and C(tls) (C(cert_file), C(key_file) and optional C(ca_file), the
        operator's files on the controller; both set - serve HTTPS with the copies the role makes under
        C(config_dir)/tls; refused for an engine release without TLS flags).
      - Without a key, a plan whose host is not a loopback address is refused unless C(allow_unauthenticated) is true.
      - With a key, vLLM mounts the key file (C(unit.secret_file)) read-only and starts through a C(/bin/sh)
        wrapper that exports it as C(VLLM_API_KEY), so the key is not in the container's configuration.
      - vLLM reads C(launcher), C(image_repository), C(image_tag), C(image_digest), C(container_name), C(docker_bin),
        C(gpus), C(cdi_devices), C(network_host), C(ipc_host), C(shm_size), C(ulimits), C(privileged),
        C(extra_run_args), C(source_checkout), C(source_repo), C(source_ref) and C(source_dir).
      - SGLang reads C(root) (the directory of its release venvs); with C(api_key) the argv names the secret config
        file.
    type: dict
    default: {}
  state:
    description:
      - C(present) renders the full spec from the plan.
      - C(absent) returns only where the release lives (C(unit), C(config_dir), C(record_path), and C(container) or
        C(root)), from the settings alone, for removing it.
    type: str
    default: present
    choices: [present, absent]
attributes:
  check_mode:
    support: full
    description: Pure computation on the controller; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing; there is nothing to diff.
  idempotent:
    support: full
    description: The same plan and settings give the same spec.
notes:
  - An empty C(image_tag) or C(source_ref) means C(v) followed by the plan's engine version.
"""

EXAMPLES = r"""
- name: Render the launch spec from the serving plan
  fleetserve.minimax.launch_spec:
    engine: sglang
    plan: "{{ preflight_plan }}"
    settings:
      service_name: sglang
      root: /opt/fleetserve/sglang
      extra_args: [--enable-cache-report]
      api_key: true
  register: launch

- name: Show the engine's command line
  ansible.builtin.debug:
    var: launch.spec.exec
"""

RETURN = r"""
spec:
  description: The launch spec.
  returned: success
  type: dict
  contains:
    engine:
      description: C(vllm) or C(sglang).
      type: str
    version:
      description: The engine release.
      type: str
    exec:
      description: The unit's command line (C(docker run ... IMAGE ARGV) or C(VENV/bin/python -m sglang.launch_server ARGV)).
      type: list
      elements: str
    argv:
      description: The engine's own arguments, as its argument parser sees them.
      type: list
      elements: str
    env:
      description: The engine's environment without secrets.
      type: dict
    unit:
      description: The unit's C(name), C(service), C(path), C(env_file), C(secret_file) (SGLang), C(description),
        C(start_timeout_s) and C(stop_timeout_s).
      type: dict
    config_dir:
      description: The directory of the env file (and the SGLang secret file).
      type: str
    probe_url:
      description: The engine's health URL as the host reaches it (https with TLS).
      type: str
    tls:
      description:
        - With C(tls) in O(settings) - C(dir), C(cert_file), C(key_file), C(ca_file) (where the role copies the
          operator's certificate, key and CA bundle on the host; C(ca_file) null without one) and C(argv) (the flags
          naming them); null without TLS.
      type: dict
    venv:
      description: SGLang only - C(root), C(dir), C(python) and C(current_link) of the release venv.
      type: dict
    release:
      description:
        - The release record (schema 1), written to C(release_dir)/current.json (a key of O(settings)) with mode 0644 once the
          engine runs it; read by the rollout, rollback and status playbooks.
        - Keys C(schema), C(engine), C(version), C(model), C(revision), C(model_dir), C(served_model_name), C(host),
          C(port), C(service), C(unit), C(config_dir), C(venv), C(image) (C(repository), C(tag), C(digest), C(ref)), C(container),
          C(source), C(scheme) (http or https), C(tls_ca_file) (the CA bundle's copy on the host, or null), C(plan),
          C(plan_digest).
      type: dict
    record_path:
      description: Where the release record is written.
      type: str
  sample:
    engine: sglang
    version: 0.5.23
    argv: [--model-path, /srv/models/MiniMax-M2.5, --served-model-name, MiniMaxAI/MiniMax-M2.5, --tp-size, "2"]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fleetserve.minimax.plugins.module_utils._launch import (  # noqa: E402
    ARGUMENT_SPEC,
    launch_spec,
)


def main():
    # The action plugin of the same name normally answers on the controller; this is the same function
    # for a run that reaches the host (e.g. with the action disabled).
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        spec = launch_spec(
            module.params["engine"], module.params["plan"], module.params["settings"], module.params["state"]
        )
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, spec=spec)


if __name__ == "__main__":
    main()
