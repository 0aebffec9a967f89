#!/usr/bin/python
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: router_worker
short_description: Take one worker out of an SGLang Model Gateway, or put it back, and wait until it is done
version_added: 0.2.0
description:
  - Runs on the router host against the gateway's worker API (GET, POST, PATCH and DELETE C(/workers)), in one
    call that a rolling update spends inside the host's out-of-rotation window.
  - V(leave) sends C(DELETE /workers/{id}) for every entry of O(worker_url) not draining yet (with
    O(drain_settle), a C(PATCH) of the entry's settle time first), then waits until the worker is gone, or only
    draining (O(leave_until)).
  - V(join) waits until no draining entry of the worker is left, sends C(POST /workers) unless the worker is
    listed already (with O(drain_settle) as the worker's own settle time), then waits until the gateway lists it
    healthy.
  - Fails with the worker's entries when the gateway refuses a call or the wait reaches O(timeout).
author: fleetserve maintainers (@fleetserve)
attributes:
  check_mode:
    support: full
    description: Reads the worker list only and reports whether the worker would be removed or added.
  diff_mode:
    support: none
    description: The change is the gateway's worker list; RV(entries) shows the worker's entries.
  idempotent:
    support: full
    description: A worker already gone (leave) or listed (join) is left as it is.
options:
  api_url:
    description: The gateway's base URL, for example C(http://127.0.0.1:30000) (its loopback port on the router host).
    type: str
    required: true
  api_key:
    description:
      - The router's API key, sent as the bearer token and, on V(join), as the worker's C(api_key) so that the
        gateway probes the worker with it. Empty for a gateway without a key.
    type: str
    default: ""
  worker_url:
    description: The worker, exactly as the gateway lists it (C(http://HOST:PORT)).
    type: str
    required: true
  action:
    description: V(leave) removes the worker and waits; V(join) adds it and waits until it is healthy.
    type: str
    required: true
    choices: [join, leave]
  leave_until:
    description:
      - What V(leave) waits for after the DELETE. V(gone) the gateway dropped the worker after its own settle time;
        V(draining) it sends the worker no new request (the caller waits for the engine's in-flight requests itself).
    type: str
    choices: [gone, draining]
    default: gone
  drain_settle:
    description:
      - Seconds the gateway keeps the worker's entry, listed V(draining), after the DELETE before it drops it (the
        worker's C(health.drain_settle_secs); the gateway's own C(--drain-settle-secs) is 5 in smg 1.13.0).
        Omitted or null, the gateway's setting stays.
      - That settle time is a fixed wait, not a drain; requests already sent to the worker finish after the entry
        is dropped. V(0) drops it at once, so a V(join) right after a restart need not wait for it.
      - Range 0 to 3600.
    type: int
  timeout:
    description: Seconds to wait at most for the worker to leave or to turn healthy. Range 1.0 to 86400.0.
    type: float
    default: 120
  interval:
    description: Seconds between two reads of the worker list while waiting. Range 0.1 to 60.0.
    type: float
    default: 0.5
  request_timeout:
    description: Seconds one call to the gateway may take. Range 1.0 to 600.0.
    type: float
    default: 10
notes:
  - HTTP goes through C(ansible.module_utils.urls), without proxies or C(.netrc); certificates are not checked
    (the gateway's own loopback API, TLS when the fleet uses it).
seealso:
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: Take the engine host out of the router (new requests stop at once)
  fleetserve.minimax.router_worker:
    api_url: http://127.0.0.1:30000
    api_key: "{{ router_key }}"
    worker_url: http://10.0.0.5:8000
    action: leave
    leave_until: draining
    drain_settle: 0  # the caller waits for the engine's in-flight requests itself
  delegate_to: router-1

- name: Put it back and wait until the gateway finds it healthy
  fleetserve.minimax.router_worker:
    api_url: http://127.0.0.1:30000
    api_key: "{{ router_key }}"
    worker_url: http://10.0.0.5:8000
    action: join
  delegate_to: router-1
"""

RETURN = r"""
entries:
  description: The gateway's entries for O(worker_url) when the call ended (none once it has left).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "3f2a", "url": "http://10.0.0.5:8000", "status": "ready", "is_healthy": true}]
waited_s:
  description: Seconds from the first read of the list to the end of the wait.
  returned: success
  type: float
  sample: 2.6
"""

import json
from urllib.error import HTTPError

from ansible.module_utils.urls import Request
from ansible_collections.fleetserve.minimax.plugins.module_utils._bounds import BoundedModule
from ansible_collections.fleetserve.minimax.plugins.module_utils._router_worker import RouterWorkerError, move

ARGUMENT_SPEC = dict(
    api_url=dict(type="str", required=True),
    api_key=dict(type="str", default="", no_log=True),
    worker_url=dict(type="str", required=True),
    action=dict(type="str", required=True, choices=["join", "leave"]),
    leave_until=dict(type="str", default="gone", choices=["gone", "draining"]),
    drain_settle=dict(type="int"),
    timeout=dict(type="float", default=120.0),
    interval=dict(type="float", default=0.5),
    request_timeout=dict(type="float", default=10.0),
)

# The ranges DOCUMENTATION states (Range LOW to HIGH.), checked before the first call.
BOUNDS = dict(drain_settle=(0, 3600), timeout=(1.0, 86400.0), interval=(0.1, 60.0), request_timeout=(1.0, 600.0))


def gateway(api_url, api_key, timeout):
    """request(method, path, body) -> (status, JSON body or None) against the gateway at api_url."""
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = "Bearer " + api_key
    client = Request(
        headers=headers,
        timeout=timeout,
        validate_certs=False,
        use_proxy=False,
        follow_redirects="none",
        use_netrc=False,  # a ~/.netrc entry must not replace the bearer key
    )

    def request(method, path, body):
        data = json.dumps(body).encode() if body is not None else None
        extra = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = client.open(method, api_url.rstrip("/") + path, data=data, headers=extra)
            status, text = response.getcode(), response.read()
        except HTTPError as exc:
            return exc.code, None
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, None

    return request


def main():
    module = BoundedModule(BOUNDS, argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        result = move(
            gateway(params["api_url"], params["api_key"], params["request_timeout"]),
            params["worker_url"],
            params["action"],
            until=params["leave_until"],
            timeout_s=params["timeout"],
            poll_s=params["interval"],
            api_key=params["api_key"],
            drain_settle_s=params["drain_settle"],
            check_mode=module.check_mode,
        )
    except RouterWorkerError as exc:
        module.fail_json(msg="%s: %s" % (params["api_url"], exc.message), entries=exc.entries)
    except Exception as exc:  # URLError, socket and http.client errors: the gateway cannot be reached
        module.fail_json(msg="%s: the router's API cannot be reached (%s)" % (params["api_url"], exc), entries=[])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
