# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one health rule (plugins/module_utils/_health.py) for playbooks."""

from __future__ import annotations

DOCUMENTATION = r"""
name: health_state
short_description: What an engine's health answer means
description:
  - Takes the HTTP status of an engine's health route (C(-1) or none for no answer) and the engine (C(vllm) or
    C(sglang)), and returns C(ready), C(warming_up) or C(failing) by the rule the engine wait and verify use.
  - 200 is ready on both engines; SGLang's 503 is warm-up, vLLM's 503 a dead engine core.
version_added: 0.2.0
author: fleetserve maintainers (@fleetserve)
options:
  _input:
    description: The HTTP status.
    type: raw
    required: true
  engine:
    description: The engine that answered.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Judge an engine's health answer
  ansible.builtin.debug:
    msg: "{{ health.status | fleetserve.minimax.health_state(preflight_plan.engine) }}"
"""

RETURN = r"""
_value:
  description: C(ready), C(warming_up) or C(failing).
  type: str
"""

from ansible_collections.fleetserve.minimax.plugins.module_utils import _health  # noqa: E402


def health_state(status, engine):
    try:
        status = int(status)
    except (TypeError, ValueError):
        status = None
    return _health.health_state(engine, status)


class FilterModule:
    def filters(self):
        return {"health_state": health_state}
