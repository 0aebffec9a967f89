# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of fleetserve.minimax.check_bounds: every number of a role entry point at its bounds."""

from __future__ import annotations

import functools
import os

import yaml
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import combine_vars

from ansible_collections.fleetserve.minimax.plugins.module_utils import _bounds

ROLES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "roles")


@functools.lru_cache(maxsize=1)
def collection_ranges():
    """Every role's numeric options, ``{name: (type, range)}``, from this collection's argument specs.

    A name in several entry points or roles states one range (tests/unit/test_bounds.py holds them equal).
    """
    ranges = {}
    for role in sorted(os.listdir(ROLES_DIR)):
        path = os.path.join(ROLES_DIR, role, "meta", "argument_specs.yml")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as handle:
            specs = (yaml.safe_load(handle) or {}).get("argument_specs") or {}
        for spec in specs.values():
            for name, found in _bounds.spec_ranges((spec or {}).get("options")).items():
                ranges.setdefault(name, found)
    return ranges


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # pure: reads the role's spec and variables, nothing on the host
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self.validate_argument_spec(argument_spec={"entry_point": {"type": "str"}})[1]
        role = self._task._role
        if role is None:
            return self._check_inventory(result, task_vars)
        entry = args["entry_point"] or role._from_files.get("tasks", "main")
        specs = role._get_role_argspecs() or {}
        spec = specs.get(entry) or specs.get(entry.rsplit(".", 1)[0]) or {}
        options = spec.get("options") or {}
        try:
            ranges = _bounds.spec_ranges(options)
        except ValueError as exc:
            result.update(failed=True, msg="%s argument spec '%s': %s" % (role.get_name(), entry, exc))
            return result
        # The values the role will see, templated, exactly as ansible-core's own argument validation reads them.
        tops = {name.split(".")[0] for name in ranges}
        values = {name: task_vars[name] for name in tops if name in task_vars}
        values = combine_vars(self._templar.template(values), role._role_params or {})
        error = _bounds.bounds_error(values, ranges)
        checked = sorted(name for name, (_kind, bounds) in ranges.items() if bounds is not None)
        if error:
            result.update(failed=True, msg="%s (entry point %s): %s" % (role.get_name(), entry, error))
        else:
            result.update(changed=False, checked=checked, msg="%d numbers within their ranges" % len(checked))
        return result

    def _check_inventory(self, result, task_vars):
        """Outside a role (the first play of the collection's playbooks): every role's numbers as the inventory and
        extra vars set them, before any role runs. A string that is no number is refused here naming its range,
        where ansible-core's argument validation of the role would name only its type."""
        ranges = collection_ranges()
        tops = {name.split(".")[0] for name in ranges}
        values = {}
        for name in sorted(tops & set(task_vars)):
            try:
                values[name] = self._templar.template(task_vars[name])
            except AnsibleError:
                continue  # reads facts not gathered yet: the role's own check sees the value
        error = _bounds.bounds_error(values, ranges)
        checked = sorted(name for name in values if name in ranges)
        if error:
            result.update(failed=True, msg="inventory variables: %s" % error)
        else:
            result.update(changed=False, checked=checked, msg="%d numbers within their ranges" % len(checked))
        return result
