# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the nvidia_driver and nvidia_fabricmanager roles (thin wrappers over _nvidia_driver)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: nvidia_driver
short_description: Filters for NVIDIA driver and Fabric Manager decisions
description:
  - C(nvidia_smi_parse) parses C(nvidia-smi -q -x) into driver version and per-GPU facts.
  - C(nvidia_apt_pin) resolves an exact upstream version to the package version in C(apt-cache madison) output.
  - C(nvidia_driver_packages), C(nvidia_reboot_decision), C(nvidia_fabric_plan), C(nvidia_fabric_not_ready)
    and the C(nvidia_problem_*) filters implement the roles' decisions; a problem filter returns the error message naming the fix, or an empty string.
version_added: 0.1.0
author: fleetserve maintainers (@fleetserve)
"""

# Plugins import after their documentation strings.
from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.fleetserve.minimax.plugins.module_utils import _nvidia_driver as nv  # noqa: E402


def _wrap(func):
    def filter_(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise AnsibleFilterError(str(exc)) from None

    filter_.__name__ = func.__name__
    return filter_


def _problem(func):
    """A check as a filter: the error message naming the fix, or "" when all is well.

    Roles use it as ``assert: that: problem | length == 0, fail_msg: "{{ problem }}"`` so the task
    fails with exactly this message (a raising filter would wrap it in templating noise).
    """

    def problem(*args):
        try:
            func(*args)
        except ValueError as exc:
            return str(exc)
        return ""

    problem.__name__ = func.__name__
    return problem


class FilterModule:
    def filters(self):
        return {
            "nvidia_smi_parse": _wrap(nv.parse_smi_xml),
            "nvidia_sysfs_version": _wrap(nv.parse_sysfs_version),
            "nvidia_upstream_version": _wrap(nv.upstream_version),
            "nvidia_branch": _wrap(nv.branch),
            "nvidia_apt_pin": _wrap(nv.resolve_pin),
            "nvidia_driver_packages": _wrap(nv.driver_packages),
            "nvidia_reboot_decision": _wrap(nv.reboot_decision),
            "nvidia_is_control_node": _wrap(nv.is_control_node),
            "nvidia_fabric_plan": _wrap(nv.fabric_plan),
            "nvidia_fabric_not_ready": _wrap(nv.fabric_not_ready),
            "nvidia_apt_pins": _wrap(nv.resolve_pins),
            "nvidia_problem_apt_pins": _problem(nv.resolve_pins),
            "nvidia_problem_not_serving": _problem(nv.check_not_serving),
            "nvidia_problem_secure_boot": _problem(nv.check_secure_boot),
            "nvidia_problem_running_version": _problem(nv.check_running_version),
        }
