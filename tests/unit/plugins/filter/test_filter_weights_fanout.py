"""weights_fanout_plan filter: holders read from the registered checks, peer URLs, bad input as a filter error."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetserve.minimax.plugins.filter.weights_fanout import FilterModule

pytestmark = pytest.mark.unit

plan = FilterModule().filters()["weights_fanout_plan"]


def test_holders_come_from_the_checks_and_urls_from_the_inventory():
    hostvars = {
        "h1": {"__weights_local": {"skipped": True}, "ansible_host": "10.0.0.1"},
        "h2": {"__weights_local": {"ok": False}, "weights_peer_address": "192.168.9.2", "ansible_host": "10.0.0.2"},
        "h3": {"__weights_local": {"ok": True}},
        "h4": {"__weights_local": {"ok": False}, "ansible_host": "fd00::4"},
    }
    got = plan(["h1", "h2", "h3", "h4"], hostvars, seed="h1", degree="1", user="fleetserve", port="8873")
    assert got["sources"] == {"h2": "h1", "h4": "h3"}
    assert got["servers"] == ["h1", "h3"]
    assert got["urls"] == {
        "h1": "rsync://fleetserve@10.0.0.1:8873/",
        "h2": "rsync://fleetserve@192.168.9.2:8873/",
        "h3": "rsync://fleetserve@h3:8873/",
        "h4": "rsync://fleetserve@[fd00::4]:8873/",
    }


def test_value_errors_become_filter_errors():
    with pytest.raises(AnsibleFilterError, match="^weights_fanout_degree is 0: set it to 1 or more$"):
        plan(["h1", "h2"], {"h1": {}, "h2": {}}, seed="h1", degree=0)


def test_a_seed_downloading_in_the_background_is_waited_for_only_by_the_hosts_it_feeds():
    hostvars = {"h1": {}, "h2": {"__weights_local": {"ok": False}}, "h3": {"__weights_local": {"ok": True}}}
    hostvars["h4"] = {"__weights_local": {"ok": False}}
    got = plan(["h1", "h2", "h3", "h4"], hostvars, seed="h1", announcing=["h1"])
    assert got["sources"] == {"h2": "h1", "h4": "h3"}
    assert got["after"] == {"h2": ["h1"], "h4": []}  # h3 held its copy before the run: nothing to wait for
    with pytest.raises(AnsibleFilterError, match=r"announce it beforehand: \['h2'\]"):
        plan(["h1", "h2"], {"h1": {}, "h2": {}}, seed="h1", announcing=["h2"])
