#!/usr/bin/python
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_switch
short_description: Switch an engine unit to its staged release in one call - files in place, restart, health, record
version_added: 0.3.0
description:
  - The switch step of "stage, then switch" (the rollout's drained window). The engine roles render the
    release's env file, secret config and unit to staged paths while the old release still serves; this
    module then, in one call on the host, installs them, restarts the unit, waits for its health route and
    writes the release record.
  - Each staged file of O(files) whose content, owner, group or mode differ from its destination is copied
    to a temporary file beside the destination (owner and mode of the staged file) and renamed over it
    (atomic). The staged file stays, so the next stage step finds it unchanged.
  - O(link) points a symlink (the current release venv) at its target atomically; O(remove) deletes files
    no longer in use (a secret config after the API key was turned off).
  - C(systemctl daemon-reload) runs when anything changed, the unit is enabled when it is not, started
    when it does not run, restarted when anything changed or O(restart) is set. After a start or restart
    the module waits for O(health_url) exactly as M(fleetserve.minimax.engine_health_wait) does (fails at
    the unit's first exit, with its journal lines, O(redact) applied).
  - Once the engine answers (or when nothing needed a restart), O(record) is written to O(record_path)
    (JSON, mode 0644, atomic), so the record never names a release that did not come up.
  - File contents never appear in the result, the diff or the log.
author: fleetserve maintainers (@fleetserve)
attributes:
  check_mode:
    support: full
    description: Reports what would be installed and whether the unit would restart; changes and restarts nothing.
  diff_mode:
    support: partial
    description: The diff names the files, link and record that would change, never their contents (secrets).
  idempotent:
    support: full
    description: A second call with the same staged files changes nothing and restarts nothing.
options:
  service:
    description: The engine's systemd unit, for example C(sglang.service).
    type: str
    required: true
  files:
    description: Staged files to install, each C(src) (the staged path) to C(dest) (the live path).
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: The staged file, rendered with the owner, group and mode the live file must have.
        type: path
        required: true
      dest:
        description: The live path the unit reads.
        type: path
        required: true
  link:
    description: A symlink to point at its target, C(dest) to C(src) (the current release venv).
    type: dict
    suboptions:
      src:
        description: What the link points at.
        type: path
        required: true
      dest:
        description: The link; a real directory there (the layout before release venvs) is replaced.
        type: path
        required: true
  remove:
    description: Paths that must not exist after the switch (a secret file no longer in use).
    type: list
    elements: path
    default: []
  require:
    description: Paths the staged release must have (its venv's python); the switch is refused without them.
    type: list
    elements: path
    default: []
  require_image:
    description: A container image that must be on the host (C(docker image inspect)); refused without it.
    type: str
  docker_bin:
    description: The Docker CLI that O(require_image) asks.
    type: str
    default: docker
  require_fix:
    description: What the refusal of a missing O(require) path, O(require_image) or staged file tells the operator to do.
    type: str
    default: Run the engine role's entry point stage for this plan first.
  restart:
    description: Restart the unit even when no file changed (a TLS file copied, a new release of the same files).
    type: bool
    default: false
  health_url:
    description: The health route to wait for after a start or restart; none, no wait.
    type: str
  engine:
    description: The engine behind O(health_url), for the wording of a timeout (C(plugins/module_utils/_health.py)).
    type: str
    choices: [vllm, sglang]
  health_timeout:
    description: Seconds to wait at most for the health route while the unit keeps running. Range 0.1 to 604800.0.
    type: float
    default: 600
  health_interval:
    description: Seconds between health polls. Range 0.05 to 600.0.
    type: float
    default: 5
  journal_lines:
    description: How many of the unit's last journal lines a failed wait returns. Range 0 to 1000.
    type: int
    default: 20
  redact:
    description: Strings replaced by C(********) in returned journal lines (the API key, a token).
    type: list
    elements: str
    default: []
  record_path:
    description: Where the release record goes (C(current.json)); none, no record.
    type: path
  record:
    description: The release record, written as JSON once the engine is up.
    type: dict
notes:
  - Runs C(systemctl) and C(journalctl); needs systemd 235 or later (C(NRestarts)).
seealso:
  - module: fleetserve.minimax.engine_health_wait
"""

EXAMPLES = r"""
- name: Switch SGLang to the staged release
  fleetserve.minimax.engine_switch:
    service: sglang.service
    files:
      - {src: /etc/sglang/staged/sglang.env, dest: /etc/sglang/sglang.env}
      - {src: /etc/sglang/staged/sglang.service, dest: /etc/systemd/system/sglang.service}
    link: {src: /opt/sglang/venv-0.5.5, dest: /opt/sglang/venv}
    require: [/opt/sglang/venv-0.5.5/bin/python]
    health_url: http://127.0.0.1:30000/health
    engine: sglang
    health_timeout: 1800
    redact: ["{{ fleetserve_api_key | default('') }}"]
    record_path: /var/lib/fleetserve/releases/current.json
    record: "{{ release }}"
"""

RETURN = r"""
installed:
  description: Live paths replaced by their staged file.
  returned: always
  type: list
  elements: str
  sample: ["/etc/sglang/sglang.env"]
linked:
  description: Whether the link was pointed at a new target.
  returned: always
  type: bool
removed:
  description: Paths removed.
  returned: always
  type: list
  elements: str
service_action:
  description: What the unit needed, V(start), V(restart) or none.
  returned: always
  type: str
  sample: restart
enabled:
  description: Whether the unit was enabled by this call.
  returned: always
  type: bool
health:
  description: The health wait after a start or restart (C(elapsed_s), C(attempts), C(status)); empty without one.
  returned: always
  type: dict
  sample: {"elapsed_s": 2.1, "attempts": 11, "status": 200}
record_changed:
  description: Whether the release record was written.
  returned: always
  type: bool
reason:
  description: Why the health wait failed (V(exited), V(stopped), V(timeout)), as M(fleetserve.minimax.engine_health_wait).
  returned: failure
  type: str
journal:
  description: The unit's last journal lines after a failed wait, O(redact) applied.
  returned: failure
  type: list
  elements: str
"""

import json
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
from ansible_collections.fleetserve.minimax.plugins.module_utils._switch import (
    SwitchError,
    apply_switch,
    plan_switch,
    service_action,
    text_matches,
    write_text,
)

_PAIR = dict(src=dict(type="path", required=True), dest=dict(type="path", required=True))

ARGUMENT_SPEC = dict(
    service=dict(type="str", required=True),
    files=dict(type="list", elements="dict", default=[], options=_PAIR),
    link=dict(type="dict", options=_PAIR),
    remove=dict(type="list", elements="path", default=[]),
    require=dict(type="list", elements="path", default=[]),
    require_image=dict(type="str"),
    docker_bin=dict(type="str", default="docker"),
    require_fix=dict(type="str", default="Run the engine role's entry point stage for this plan first."),
    restart=dict(type="bool", default=False),
    health_url=dict(type="str"),
    engine=dict(type="str", choices=["vllm", "sglang"]),
    health_timeout=dict(type="float", default=600.0),
    health_interval=dict(type="float", default=5.0),
    journal_lines=dict(type="int", default=20),
    redact=dict(type="list", elements="str", default=[], no_log=True),
    record_path=dict(type="path"),
    record=dict(type="dict"),
)

# The ranges DOCUMENTATION states (Range LOW to HIGH.), checked before anything runs.
BOUNDS = dict(health_timeout=(0.1, 604800.0), health_interval=(0.05, 600.0), journal_lines=(0, 1000))


def record_text(record):
    """The record as the roles wrote it before (to_nice_json: 4-space indent, sorted keys) plus a newline."""
    return json.dumps(record, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def main():
    module = BoundedModule(BOUNDS, argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    systemctl = module.get_bin_path("systemctl", required=True)
    started = time.monotonic()

    def systemctl_run(*args):
        rc, out, err = module.run_command([systemctl, *args])
        if rc != 0:
            module.fail_json(msg="systemctl %s failed: %s" % (" ".join(args), (err or out).strip()))
        return out

    def show():
        return parse_unit_show(systemctl_run("show", params["service"], "-p", ",".join(UNIT_PROPERTIES)))

    if params["require_image"]:
        docker = module.get_bin_path(params["docker_bin"]) or params["docker_bin"]
        rc, _out, _err = module.run_command(
            [docker, "image", "inspect", "--format", "{{.Id}}", params["require_image"]]
        )
        if rc != 0 and not module.check_mode:
            module.fail_json(
                msg="Image %s is not on the host: the release was not staged. %s"
                % (params["require_image"], params["require_fix"])
            )
    try:
        to_install, to_link, to_remove = plan_switch(
            params["files"], params["link"], params["remove"], params["require"], params["require_fix"]
        )
    except SwitchError as exc:
        if not module.check_mode:
            module.fail_json(msg=str(exc))
        to_install, to_link, to_remove = [(f["src"], f["dest"]) for f in params["files"]], None, []

    changed_files = bool(to_install or to_link or to_remove)
    active = show().get("ActiveState", "")
    enabled_state = module.run_command([systemctl, "is-enabled", params["service"]])[1].strip()
    action = service_action(active, changed_files, params["restart"])
    need_enable = enabled_state != "enabled"
    record = record_text(params["record"]) if params["record_path"] and params["record"] is not None else None
    record_changed = record is not None and not text_matches(params["record_path"], record)

    result = dict(
        installed=[dest for _src, dest in to_install],
        linked=bool(to_link),
        removed=to_remove,
        service_action=action,
        enabled=need_enable,
        health={},
        record_changed=record_changed,
    )
    result["changed"] = bool(changed_files or action or need_enable or record_changed)
    if module._diff:
        lines = ["install %s" % dest for dest in result["installed"]]
        lines += ["link %s -> %s" % (to_link[1], to_link[0])] if to_link else []
        lines += ["remove %s" % path for path in to_remove]
        lines += ["%s %s" % (action, params["service"])] if action else []
        lines += ["write %s" % params["record_path"]] if record_changed else []
        result["diff"] = dict(before="", after="\n".join(lines) + ("\n" if lines else ""))
    if module.check_mode:
        module.exit_json(**result)

    apply_switch(to_install, to_link, to_remove)
    if changed_files:
        systemctl_run("daemon-reload")
    if need_enable:
        systemctl_run("enable", params["service"])
    if action:
        systemctl_run(action, params["service"])
        if params["health_url"]:
            waiter = engine_wait(
                params["service"],
                params["health_url"],
                params["health_timeout"],
                params["health_interval"],
                show,
                params["engine"],
            )
            try:
                health = waiter.run()
            except EngineNotReady as exc:
                journalctl = module.get_bin_path("journalctl")
                lines = journal_tail(
                    module.run_command, journalctl, params["service"], params["journal_lines"], params["redact"]
                )
                result.update(reason=exc.reason, unit=exc.state, journal=lines)
                result["elapsed_s"] = round(time.monotonic() - started, 2)
                module.fail_json(msg=not_ready_message(exc, lines), **result)
            result["health"] = {key: health[key] for key in ("elapsed_s", "attempts", "status")}
    if record_changed:
        write_text(params["record_path"], record, 0o644)
    result["elapsed_s"] = round(time.monotonic() - started, 2)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
