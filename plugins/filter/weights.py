# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the weights role (controller side)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: weights_fanout_rounds
short_description: Schedule a tree fan-out of model weights across hosts
version_added: "0.1.0"
description:
  - Returns a list of rounds; each round maps a receiving host to the host it copies from. Every host holding a
    verified copy feeds O(degree) new hosts per round, so the holders multiply each round.
options:
  _input:
    description: Hosts that already hold a verified copy (at first, the seed host).
    type: list
    elements: str
    required: true
  waiting:
    description: Hosts that need a copy.
    type: list
    elements: str
    required: true
  degree:
    description: Receivers each holder feeds per round.
    type: int
    default: 1
"""

EXAMPLES = r"""
rounds: "{{ ['h1'] | fleetserve.minimax.weights_fanout_rounds(['h2', 'h3', 'h4']) }}"
# -> [{"h2": "h1"}, {"h3": "h1", "h4": "h2"}]
"""

RETURN = r"""
_value:
  description: The rounds, each a dict receiver -> source.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.fleetserve.minimax.plugins.module_utils._weights import fanout_rounds


def weights_fanout_rounds(holders, waiting, degree=1):
    try:
        return fanout_rounds(list(holders), list(waiting), int(degree))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule:
    def filters(self):
        return {"weights_fanout_rounds": weights_fanout_rounds}
