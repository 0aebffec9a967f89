#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check_bounds
short_description: Refuse a role's integer or float variable outside the range its argument spec states
description:
  - The first task of each role entry point of this collection, right after ansible-core's own argument
    validation (which checks types and choices but has no minimum or maximum).
  - Reads the C(meta/argument_specs.yml) entry point of the role it runs in. Each C(int) and C(float) option states
    its range once, in its description, as one sentence C(Range LOW to HIGH.) (both ends valid), which C(ansible-doc)
    shows too. Every value outside its range, or not a number at all, is refused in one message that names the
    variable and the valid range, before the role changes anything.
  - An unset (null) option is not checked. An option without a range is not checked either; the collection's test
    of its specs fails on it.
  - Outside a role (the play C(playbooks/inputs.yml) that the collection's playbooks import first), it checks every
    numeric option of every role of the collection as the inventory and extra vars give them, before any role runs.
    That is where a string that is no number is refused naming its range; inside a role, ansible-core's argument
    validation runs first and names only the type. A value that reads facts not gathered yet is left to the role.
  - Runs on the controller (an action); nothing is read from or written to the host. The rules live in
    C(plugins/module_utils/_bounds.py).
version_added: 0.2.0
author: fleetserve maintainers (@fleetserve)
options:
  entry_point:
    description:
      - The entry point whose spec to check; by default the one the role was included with (C(tasks_from)).
      - Not used outside a role.
    type: str
attributes:
  check_mode:
    support: full
    description: Reads variables only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing; there is nothing to diff.
  idempotent:
    support: full
    description: Changes nothing.
"""

EXAMPLES = r"""
# The first task of roles/preflight/tasks/main.yml
- name: Preflight | Check every number against its range
  fleetserve.minimax.check_bounds:

# The first play of playbooks/site.yml (playbooks/inputs.yml)
- name: Inputs | Refuse a number out of its range or no number at all, naming the range
  fleetserve.minimax.check_bounds:
"""

RETURN = r"""
checked:
  description: The options whose values were checked against a range.
  returned: success
  type: list
  elements: str
  sample: [preflight_dist_init_port, preflight_port]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main():
    module = AnsibleModule(argument_spec={"entry_point": {"type": "str"}}, supports_check_mode=True)
    module.fail_json(msg="fleetserve.minimax.check_bounds is an action: it runs on the controller")


if __name__ == "__main__":
    main()
