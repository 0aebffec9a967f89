"""Run the collection's playbooks through ansible-runner and reduce the event stream to per-host results.

Secrets never pass through here: ansible-runner writes extravars and envvars to disk in plain text
(and records the inherited environment in ``artifacts/<ident>/command``), so hosts read tokens and
keys from vault or files, and :func:`scrub_secret_environment` drops secret-looking variables from
this process before a run.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import ansible_runner

from fleetserve import paths

ARTIFACTS_KEPT = 20
# The one definition of a secret-looking name, for environment variables (removed from what the runner
# inherits) and for -e keys (refused by the CLI): both would end up in the run's artifacts.
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL|VAULT)", re.IGNORECASE)
# Environment variables that match but hold paths or settings, not secrets: Ansible's vault password file
# and identity settings, the SSH agent socket, and the HashiCorp Vault client's address and TLS settings.
_NOT_SECRET_ENV = {
    "ANSIBLE_VAULT_PASSWORD_FILE",
    "ANSIBLE_VAULT_IDENTITY_LIST",
    "ANSIBLE_VAULT_IDENTITY",
    "ANSIBLE_VAULT_ID_MATCH",
    "ANSIBLE_VAULT_ENCRYPT_IDENTITY",
    "SSH_AUTH_SOCK",
    "VAULT_ADDR",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "VAULT_CAPATH",
    "VAULT_SKIP_VERIFY",
}


def looks_secret(name: str) -> bool:
    """Whether a variable name looks like it holds a secret (token, password, key, vault...)."""
    return bool(_SECRET_NAME.search(name))

EventSink = Callable[[dict], None]


@dataclass
class HostResult:
    """What happened on one host: the play recap numbers plus time and the first failures."""

    name: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    failures: list[dict] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        if self.first_seen is None or self.last_seen is None:
            return 0.0
        return round(self.last_seen - self.first_seen, 1)

    @property
    def status(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"

    def as_dict(self) -> dict:
        return {
            "host": self.name,
            "status": self.status,
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "unreachable": self.unreachable,
            "skipped": self.skipped,
            "rescued": self.rescued,
            "ignored": self.ignored,
            "seconds": self.seconds,
            "failures": self.failures,
        }


@dataclass
class RunResult:
    playbook: str
    status: str
    rc: int
    hosts: dict[str, HostResult]
    events: list[dict]
    artifact_dir: str
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and self.status == "successful" and not any(
            h.failed or h.unreachable for h in self.hosts.values()
        )

    def host_facts(self, name: str) -> dict[str, Any]:
        """The last value each host set for fact ``name`` (via set_fact or a module's ansible_facts)."""
        found: dict[str, Any] = {}
        for event in self.events:
            if event.get("event") != "runner_on_ok":
                continue
            data = event.get("event_data", {})
            facts = (data.get("res") or {}).get("ansible_facts") or {}
            if name in facts:
                found[data.get("host")] = facts[name]
        return found

    def task_results(self, action: str) -> dict[str, dict]:
        """Each host's last result of a task running module ``action`` (FQCN or short name), ok or failed."""
        found: dict[str, dict] = {}
        for event in self.events:
            if event.get("event") not in ("runner_on_ok", "runner_on_failed"):
                continue
            data = event.get("event_data", {})
            task_action = data.get("task_action", "")
            if task_action == action or task_action.rsplit(".", 1)[-1] == action:
                found[data.get("host")] = data.get("res") or {}
        return found

    def as_dict(self) -> dict:
        return {
            "playbook": self.playbook,
            "status": self.status,
            "rc": self.rc,
            "succeeded": self.succeeded,
            "seconds": self.seconds,
            "artifact_dir": self.artifact_dir,
            "hosts": [h.as_dict() for h in sorted(self.hosts.values(), key=lambda h: h.name)],
        }


def scrub_secret_environment(environ: dict | None = None) -> list[str]:
    """Remove secret-looking variables from ``environ`` (default: this process). Returns their names."""
    environ = os.environ if environ is None else environ
    removed = [k for k in list(environ) if looks_secret(k) and k not in _NOT_SECRET_ENV]
    for key in removed:
        del environ[key]
    return removed


class _Collector:
    """Consumes runner events: keeps the ones we summarise, forwards each to the progress sink."""

    KEPT = {
        "runner_on_ok",
        "runner_on_failed",
        "runner_on_unreachable",
        "runner_on_skipped",
        "runner_item_on_failed",
        "playbook_on_task_start",
        "playbook_on_stats",
    }

    def __init__(self, sink: EventSink | None):
        self.sink = sink
        self.events: list[dict] = []
        self.hosts: dict[str, HostResult] = {}

    def __call__(self, event: dict) -> bool:
        name = event.get("event", "")
        if name in self.KEPT:
            self.events.append(event)
        host = (event.get("event_data") or {}).get("host")
        if host:
            result = self.hosts.setdefault(host, HostResult(host))
            now = _event_time(event)
            result.first_seen = now if result.first_seen is None else min(result.first_seen, now)
            result.last_seen = now if result.last_seen is None else max(result.last_seen, now)
            if name in ("runner_on_failed", "runner_on_unreachable") and not event["event_data"].get("ignore_errors"):
                res = event["event_data"].get("res") or {}
                result.failures.append({"task": event["event_data"].get("task", ""), "msg": _failure_message(res)})
        if self.sink is not None:
            self.sink(event)
        return True  # False (or None) would tell ansible-runner to drop the event from its artifacts

    def apply_stats(self, stats: dict | None) -> None:
        for key, attr in (
            ("ok", "ok"),
            ("changed", "changed"),
            ("failures", "failed"),
            ("dark", "unreachable"),
            ("skipped", "skipped"),
            ("rescued", "rescued"),
            ("ignored", "ignored"),
        ):
            for host, count in ((stats or {}).get(key) or {}).items():
                setattr(self.hosts.setdefault(host, HostResult(host)), attr, count)


def _event_time(event: dict) -> float:
    created = event.get("created")
    if created:
        try:
            return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()


def _failure_message(res: dict) -> str:
    msg = str(res.get("msg") or res.get("stderr") or res.get("reason") or "").strip()
    if not msg and res.get("results"):
        msg = next((str(r.get("msg", "")) for r in res["results"] if r.get("failed")), "").strip()
    # A module that died, or whose host went away under it, gets a generic message ("MODULE FAILURE",
    # "Module result deserialization failed"): the why is the last line it wrote to stderr, or else the
    # shell's 128+N exit status of a killed process.
    stderr = str(res.get("module_stderr") or "").strip().splitlines()
    rc = str(res.get("rc", ""))
    if stderr and stderr[-1] not in msg:
        msg = f"{msg.splitlines()[0] if msg else 'module failed'} ({stderr[-1]})"
    elif not stderr and "module_stderr" in res and rc.isdigit() and int(rc) > 128:
        msg = f"{msg} (exit status {rc}: killed by signal {int(rc) - 128})"
    # Fact gathering only names the module that failed; say that module's why.
    for module in (res.get("failed_modules") or {}).values():
        inner = _failure_message(module)
        if inner:
            msg = f"{msg.rstrip('.')} ({inner})"
        break
    return msg[:2000]


def _put_our_ansible_first_on_path() -> None:
    """Run the ansible-playbook installed beside this interpreter: a venv need not be activated."""
    bin_dir = str(Path(sys.executable).parent)
    if (Path(bin_dir) / "ansible-playbook").exists() and os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


def run_playbook(
    playbook: str,
    *,
    inventory: str | os.PathLike,
    limit: str | None = None,
    tags: str | None = None,
    skip_tags: str | None = None,
    check: bool = False,
    extravars: dict | None = None,
    sink: EventSink | None = None,
    action: str | None = None,
    verbosity: int = 0,
) -> RunResult:
    """Run ``playbooks/<playbook>`` of the collection against ``inventory`` and summarise per host.

    ``extravars`` must not hold secrets (ansible-runner stores them on disk); ``sink`` receives every
    runner event as it arrives (live progress).
    """
    root = paths.collection_root()
    state = paths.state_dir()
    scrub_secret_environment()
    _put_our_ansible_first_on_path()
    ident = f"{action or Path(playbook).stem}-{datetime.now().strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    private_data_dir = state / "runs"
    private_data_dir.mkdir(mode=0o700, exist_ok=True)
    # ansible-runner writes these into the shared data dir and reads them again on every later run that
    # does not pass its own: without this, one `--check` or `-e` would silently apply to the next runs.
    for leftover in ("cmdline", "extravars"):
        (private_data_dir / "env" / leftover).unlink(missing_ok=True)
    collector = _Collector(sink)
    cmdline = []
    if check:
        cmdline.append("--check")
    if skip_tags:
        cmdline += ["--skip-tags", skip_tags]
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        project_dir=str(root / "playbooks"),
        playbook=playbook,
        inventory=str(Path(inventory).resolve()),
        limit=limit,
        tags=tags,
        extravars=extravars or {},
        cmdline=" ".join(cmdline) or None,
        envvars={
            "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(paths.collections_path()),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
        },
        ident=ident,
        rotate_artifacts=ARTIFACTS_KEPT,
        quiet=True,
        verbosity=verbosity or None,
        event_handler=collector,
    )
    collector.apply_stats(runner.stats)
    return RunResult(
        playbook=playbook,
        status=runner.status,
        rc=runner.rc,
        hosts=collector.hosts,
        events=collector.events,
        artifact_dir=str(Path(runner.config.artifact_dir)),
        seconds=round(time.monotonic() - started, 1),
    )
