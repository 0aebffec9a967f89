# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the dcgm_exporter role (thin wrappers over _dcgm)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: dcgm
short_description: Filters for the DCGM Exporter role's decisions
description:
  - C(dcgm_pairing) splits a DCGM Exporter release tag (DCGM version, exporter version) or looks up a bare exporter version.
  - C(dcgm_cuda_major), C(dcgm_packages) and C(dcgm_mode) pick the DCGM packages and the way the exporter runs.
  - The C(dcgm_problem_*) filters return the error message naming the fix, or an empty string.
version_added: 0.1.0
author: fleetserve maintainers (@fleetserve)
"""

# Plugins import after their documentation strings.
from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.fleetserve.minimax.plugins.module_utils import _dcgm  # noqa: E402


def _wrap(func):
    def filter_(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise AnsibleFilterError(str(exc)) from None

    filter_.__name__ = func.__name__
    return filter_


def _problem(func):
    """A check as a filter: the error message naming the fix, or "" (see the nvidia_driver filters)."""

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
            "dcgm_pairing": _wrap(_dcgm.pairing),
            "dcgm_cuda_major": _wrap(_dcgm.cuda_major),
            "dcgm_packages": _wrap(_dcgm.dcgm_packages),
            "dcgm_mode": _wrap(_dcgm.decide_mode),
            "dcgm_problem_pairing": _problem(_dcgm.pairing),
            "dcgm_problem_cuda_major": _problem(_dcgm.cuda_major),
            "dcgm_problem_mode": _problem(_dcgm.decide_mode),
            "dcgm_problem_port": _problem(_dcgm.check_port),
        }
