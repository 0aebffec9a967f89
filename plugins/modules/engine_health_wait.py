#!/usr/bin/python
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_health_wait
short_description: Wait for a (re)started engine unit to answer its health route, or fail at its first exit
version_added: 0.2.0
description:
  - Polls O(url) until it answers O(status_code), and the systemd unit O(service) alongside it.
  - Engine units restart on exit (C(Restart=always)), so an engine that crashes on start never turns
    C(failed) and a plain health poll only notices at its timeout, which for a large model is many
    minutes. This module fails at the unit's first exit instead (C(SubState=auto-restart) or a
    growing C(NRestarts)), with the exit status and the unit's last journal lines.
  - Fails too when the unit is stopped or failed, and at O(timeout) while the unit still runs.
  - Nothing on the target changes.
author: fleetserve maintainers (@fleetserve)
attributes:
  check_mode:
    support: none
    description: Skipped in check mode; there the unit was not (re)started, so there is nothing to wait for.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Only reads the health route, the unit's state and its journal.
options:
  service:
    description: The engine's systemd unit, for example C(sglang.service).
    type: str
    required: true
  url:
    description: The health route, for example C(http://127.0.0.1:8000/health).
    type: str
    required: true
  engine:
    description:
      - The engine behind O(url); a timeout then says what its last answer meant by the collection's one health rule
        (C(plugins/module_utils/_health.py) - SGLang's 503 is warm-up, vLLM's a dead engine core).
    type: str
    choices: [vllm, sglang]
  status_code:
    description: The status that means ready (200 for both engines; SGLang answers 503 while it warms up).
      Range 100 to 599.
    type: int
    default: 200
  timeout:
    description: Seconds to wait at most while the unit keeps running; size it to the model's load time.
      Range 0.1 to 604800.0.
    type: float
    default: 600
  interval:
    description: Seconds between polls. Range 0.1 to 600.0.
    type: float
    default: 5
  journal_lines:
    description: How many of the unit's last journal lines a failure returns (the last 4 also go in its message).
      Range 0 to 1000.
    type: int
    default: 20
  redact:
    description:
      - Strings replaced by C(********) in the returned journal lines. Engines log their arguments at
        start, the API key among them; pass the API key and any token here.
    type: list
    elements: str
    default: []
notes:
  - HTTP goes through C(ansible.module_utils.urls), without proxies; the route is expected on the host.
  - Reads the unit with C(systemctl show) and C(journalctl); needs systemd 235 or later (C(NRestarts)).
seealso:
  - module: ansible.builtin.uri
  - module: fleetserve.minimax.openai_endpoint_info
"""

EXAMPLES = r"""
- name: Wait for SGLang to answer /health
  fleetserve.minimax.engine_health_wait:
    service: sglang.service
    url: http://127.0.0.1:8000/health
    timeout: 1800
    interval: 5
    redact: ["{{ fleetserve_api_key | default('') }}"]
"""

RETURN = r"""
elapsed_s:
  description: Seconds from the start of the wait to the answer or the failure.
  returned: always
  type: float
  sample: 31.4
attempts:
  description: Health requests sent.
  returned: success
  type: int
  sample: 7
reason:
  description:
    - Why the wait failed; V(exited) the engine exited and systemd restarts it or gave up,
      V(stopped) the unit was stopped, V(timeout) it kept running without answering in time.
  returned: failure
  type: str
  sample: exited
unit:
  description: The unit's state when the wait ended (C(ActiveState), C(SubState), C(NRestarts), C(Result), C(ExecMainCode), C(ExecMainStatus)).
  returned: always
  type: dict
  sample: {"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": "0", "Result": "exit-code",
           "ExecMainCode": "1", "ExecMainStatus": "1"}
journal:
  description: The unit's last O(journal_lines) journal lines, with O(redact) applied.
  returned: failure
  type: list
  elements: str
  sample: ["RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"]
"""

import time

from ansible_collections.fleetserve.minimax.plugins.module_utils._bounds import BoundedModule
from ansible_collections.fleetserve.minimax.plugins.module_utils._engine_health import (
    UNIT_PROPERTIES,
    EngineNotReady,
    engine_wait,
    journal_tail,
    not_ready_message,
    parse_unit_show,
)

ARGUMENT_SPEC = dict(
    service=dict(type="str", required=True),
    url=dict(type="str", required=True),
    engine=dict(type="str", choices=["vllm", "sglang"]),
    status_code=dict(type="int", default=200),
    timeout=dict(type="float", default=600.0),
    interval=dict(type="float", default=5.0),
    journal_lines=dict(type="int", default=20),
    redact=dict(type="list", elements="str", default=[], no_log=True),
)

# The ranges DOCUMENTATION states (Range LOW to HIGH.), checked before the first probe.
BOUNDS = dict(status_code=(100, 599), timeout=(0.1, 604800.0), interval=(0.1, 600.0), journal_lines=(0, 1000))


def main():
    module = BoundedModule(BOUNDS, argument_spec=ARGUMENT_SPEC, supports_check_mode=False)
    params = module.params
    systemctl = module.get_bin_path("systemctl", required=True)
    journalctl = module.get_bin_path("journalctl")

    def show():
        rc, out, err = module.run_command([systemctl, "show", params["service"], "-p", ",".join(UNIT_PROPERTIES)])
        if rc != 0:
            module.fail_json(msg="systemctl show %s failed: %s" % (params["service"], err.strip()), elapsed_s=0.0)
        return parse_unit_show(out)

    started = time.monotonic()
    waiter = engine_wait(
        params["service"],
        params["url"],
        params["timeout"],
        params["interval"],
        show,
        params["engine"],
        params["status_code"],
    )
    try:
        result = waiter.run()
    except EngineNotReady as exc:
        lines = journal_tail(
            module.run_command, journalctl, params["service"], params["journal_lines"], params["redact"]
        )
        module.fail_json(
            msg=not_ready_message(exc, lines),
            reason=exc.reason,
            unit=exc.state,
            journal=lines,
            elapsed_s=round(time.monotonic() - started, 2),
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
