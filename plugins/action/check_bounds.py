# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of fleetserve.minimax.check_bounds: every number of a role entry point at its bounds."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.vars import combine_vars

from ansible_collections.fleetserve.minimax.plugins.module_utils import _bounds


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
            result.update(failed=True, msg="fleetserve.minimax.check_bounds runs inside a role (it reads its spec)")
            return result
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
