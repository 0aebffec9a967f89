# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The weights role's fan-out plan (controller side)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: weights_fanout_plan
short_description: Plan a one-task fan-out of model weights across the play's hosts
version_added: "0.2.0"
description:
  - Reads, for each host of the play, whether it already holds a verified copy (the registered result of
    M(fleetserve.minimax.model_weights_info), by default C(__weights_local)) and where its peers reach it
    (C(weights_peer_address), else C(ansible_host), else the inventory name).
  - Returns who copies from whom, whom each receiver waits for, and which hosts run a peer server. A host only
    ever waits for hosts earlier in the play's order, so fewer forks than hosts cannot deadlock the copy task.
options:
  _input:
    description: The play's hosts, in play order (C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: dict
    required: true
  seed:
    description: The host that read the origin.
    type: str
    required: true
  degree:
    description: Hosts each holder feeds at a time.
    type: int
    default: 1
  announcing:
    description:
      - Hosts that fetch their copy during the fan-out (the seed downloading in the background) and announce it
        like a receiver; the hosts fed by them wait for that announcement (and may stream from them meanwhile).
    type: list
    elements: str
    default: []
  check_var:
    description: Name of the registered verification result on each host.
    type: str
    default: __weights_local
  user:
    description: The peer servers' rsync user, for C(urls).
    type: str
    default: fleetserve
  port:
    description: The peer servers' TCP port, for C(urls).
    type: int
    default: 8873
"""

EXAMPLES = r"""
plan: "{{ ansible_play_hosts | fleetserve.minimax.weights_fanout_plan(hostvars, seed='h1') }}"
# with h1..h4, none but h1 holding a copy ->
# {"sources": {"h2": "h1", "h3": "h1", "h4": "h2"}, "after": {"h2": [], "h3": ["h2"], "h4": ["h2"]},
#  "servers": ["h1", "h2"], "urls": {"h1": "rsync://fleetserve@10.0.0.1:8873/", ...}}
"""

RETURN = r"""
_value:
  description:
    - C(sources) maps each receiver to the host it copies from; C(after) maps it to the hosts that must announce a
      verified copy before it starts; C(servers) lists the hosts that run a peer server; C(urls) maps every
      host to the C(rsync://user@address:port/) prefix its peers reach its peer server at.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.fleetserve.minimax.plugins.module_utils._weights_fanout import fanout_plan


def weights_fanout_plan(
    hosts, hostvars, seed, degree=1, check_var="__weights_local", user="fleetserve", port=8873, announcing=()
):
    hosts = list(hosts)
    holders, urls = [seed], {}
    for host in hosts:
        hv = hostvars[host]
        check = hv.get(check_var) or {}
        if host != seed and check.get("ok") is True:
            holders.append(host)
        address = hv.get("weights_peer_address") or hv.get("ansible_host") or host
        urls[host] = "rsync://%s@%s:%d/" % (user, "[%s]" % address if ":" in address else address, int(port))
    try:
        plan = fanout_plan(holders, hosts, int(degree), announcing=list(announcing or []))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))
    plan["urls"] = urls
    return plan


class FilterModule:
    def filters(self):
        return {"weights_fanout_plan": weights_fanout_plan}
