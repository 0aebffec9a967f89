# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the serving planner (plugins/module_utils/_plan.py) for what plays derive without a host."""

from __future__ import annotations

DOCUMENTATION = r"""
name: serving_plan
short_description: Where a host serves, as its serving plan would say, from the inventory alone
description:
  - C(serving_endpoint) takes the engine port wish (C(preflight_port)), C(preflight_nnodes), C(preflight_node_group),
    that group's hosts and the host's name, and returns C({port, node_rank, nnodes, node_group}) by the planner's
    own rules (the default port, ranks in inventory order), or fails naming the fix.
  - C(plan_digest) takes a serving plan and returns its identity (the SHA-1 of its canonical JSON), the
    C(plan_digest) of the release records; a rollout leaves a host alone whose record has the same digest.
  - C(release_dir) takes C(fleetserve_release_dir) (empty or undefined allowed) and returns the directory of the
    release records, C(/var/lib/fleetserve/releases) by default (C(current.json), written by the engine roles, and
    C(previous.json), written by the rollout).
version_added: 0.1.0
author: fleetserve maintainers (@fleetserve)
"""

# Plugins import after their documentation strings.
from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.fleetserve.minimax.plugins.module_utils import _launch, _plan  # noqa: E402


def serving_endpoint(port_wish, nnodes, node_group, group_hosts, me):
    try:
        return _plan.serving_endpoint(port_wish, nnodes, node_group, group_hosts, me)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def plan_digest(plan):
    return _launch.plan_digest(plan)


def release_dir(configured=None):
    return str(configured or _launch.RELEASE_DIR)


class FilterModule:
    def filters(self):
        return {"serving_endpoint": serving_endpoint, "plan_digest": plan_digest, "release_dir": release_dir}
