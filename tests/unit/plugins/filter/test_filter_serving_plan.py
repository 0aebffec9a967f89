"""The serving_endpoint filter: a host's port and node rank from the inventory, by the planner's rules."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetserve.minimax.plugins.filter.serving_plan import FilterModule
from ansible_collections.fleetserve.minimax.plugins.module_utils import _plan

pytestmark = pytest.mark.unit

serving_endpoint = FilterModule().filters()["serving_endpoint"]


def test_single_node_takes_the_plan_port_or_its_default():
    assert serving_endpoint(None, 1, None, [], "h1") == {
        "port": _plan.DEFAULT_PORT, "node_rank": 0, "nnodes": 1, "node_group": None
    }
    assert serving_endpoint(8100, 1, None, [], "h1")["port"] == 8100


def test_rank_is_the_place_in_the_node_group():
    assert serving_endpoint(8000, 2, "m25", ["n0", "n1"], "n1") == {
        "port": 8000, "node_rank": 1, "nnodes": 2, "node_group": "m25"
    }


@pytest.mark.parametrize("hosts", [["n0"], ["n0", "other"], []])
def test_a_host_outside_its_group_is_refused_naming_the_fix(hosts):
    with pytest.raises(AnsibleFilterError, match=r"^n1 has preflight_nnodes 2 but is not one of exactly that many hosts"):
        serving_endpoint(8000, 2, "m25", hosts, "n1")
