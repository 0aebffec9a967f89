"""weights_fanout_rounds filter: the schedule, and bad input as a filter error naming the fix."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetserve.minimax.plugins.filter.weights import FilterModule


def test_filter_is_registered_and_schedules_a_tree():
    rounds = FilterModule().filters()["weights_fanout_rounds"]
    assert rounds(["h1"], ["h1", "h2", "h3", "h4"], "1") == [{"h2": "h1"}, {"h3": "h1", "h4": "h2"}]


def test_filter_turns_value_errors_into_filter_errors():
    rounds = FilterModule().filters()["weights_fanout_rounds"]
    with pytest.raises(AnsibleFilterError, match="^weights_fanout_degree is 0: set it to 1 or more$"):
        rounds(["h1"], ["h2"], 0)
