# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of fleetserve.minimax.launch_spec: renders the launch spec without touching the host."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.fleetserve.minimax.plugins.module_utils import _launch


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # pure: nothing is run on the host
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=_launch.ARGUMENT_SPEC)[1]
        try:
            spec = _launch.launch_spec(args["engine"], args["plan"], args["settings"], args["state"])
        except ValueError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(changed=False, spec=spec)
        return result
