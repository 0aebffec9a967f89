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
  - C(dcgm_sections) splits the role's one host read into its parts (C(--- name) lines start each part).
  - The C(dcgm_problem_*) filters return the error message naming the fix, or an empty string.
version_added: 0.1.0
author: fleetserve maintainers (@fleetserve)
"""

# Plugins import after their documentation strings.
from ansible_collections.fleetserve.minimax.plugins.module_utils import _dcgm  # noqa: E402

# The same "a check as a filter" helpers as the driver roles' filters: one definition.
from ansible_collections.fleetserve.minimax.plugins.filter.nvidia_driver import _problem, _wrap  # noqa: E402


class FilterModule:
    def filters(self):
        return {
            "dcgm_pairing": _wrap(_dcgm.pairing),
            "dcgm_cuda_major": _wrap(_dcgm.cuda_major),
            "dcgm_packages": _wrap(_dcgm.dcgm_packages),
            "dcgm_mode": _wrap(_dcgm.decide_mode),
            "dcgm_sections": _wrap(_dcgm.sections),
            "dcgm_problem_pairing": _problem(_dcgm.pairing),
            "dcgm_problem_cuda_major": _problem(_dcgm.cuda_major),
            "dcgm_problem_mode": _problem(_dcgm.decide_mode),
            "dcgm_problem_port": _problem(_dcgm.check_port),
        }
