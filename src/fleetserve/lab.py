"""The local lab: N systemd test hosts as Docker containers, and the inventory that targets them.

The hosts boot the image built by scripts/lab/build-image.sh (Debian 12 + systemd, built locally:
our machines have no registry). `--privileged` is unavailable here, so the containers get the
explicit capability set systemd needs.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from fleetserve import paths
from fleetserve.errors import UserError

IMAGE = "fleetserve/lab-systemd:bookworm"
LABEL = "io.fleetserve.lab"


def lab_name() -> str:
    """Several labs can share one Docker engine (the test suite uses its own): FLEETSERVE_LAB names it."""
    return os.environ.get("FLEETSERVE_LAB", "fleetserve")


def prefix() -> str:
    return f"{lab_name()}-lab-"
# How every systemd test host is started (lab, weights fan-out test and bench): what systemd needs
# without --privileged.
SYSTEMD_RUN_ARGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "apparmor=unconfined", "--security-opt", "seccomp=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "--stop-signal", "SIGRTMIN+3",
    # uv ignores the system CA store; the lab sits behind a TLS-intercepting proxy. Real hosts don't need it.
    "-e", "UV_NATIVE_TLS=1",
]


def _docker(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as err:
        raise UserError("the docker command is not installed", _DOCKER_HINT) from err
    if check and proc.returncode != 0:
        raise UserError(f"docker {' '.join(args[:2])} failed: {proc.stderr.strip()[-800:]}", _DOCKER_HINT)
    return proc


_DOCKER_HINT = "start a Docker engine: `sudo scripts/lab/start-dockerd.sh` installs docker.io and starts dockerd"


def require_docker() -> None:
    proc = _docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
    if proc.returncode != 0:
        raise UserError(f"the Docker engine is not reachable ({proc.stderr.strip()[-300:]})", _DOCKER_HINT)


def ensure_image(image: str, *, build: bool) -> None:
    if _docker("image", "inspect", image, check=False).returncode == 0:
        return
    if not build:
        raise UserError(f"lab image {image} not found", "build it with `sudo scripts/lab/build-image.sh`")
    script = paths.collection_root() / "scripts" / "lab" / "build-image.sh"
    proc = subprocess.run(["bash", str(script), image], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError(f"building {image} failed:\n{proc.stderr.strip()[-1500:]}", "run scripts/lab/build-image.sh as root")


def existing_hosts() -> list[str]:
    proc = _docker("ps", "-a", "--filter", f"label={LABEL}={lab_name()}", "--format", "{{.Names}}")
    return sorted((n for n in proc.stdout.split() if n.startswith(prefix())), key=lambda n: int(n.rsplit("-", 1)[1]))


# The lab has no GPUs: each host gets nvidia-smi replaying output recorded on a real host, so the
# preflight role reads real GPU facts. The recordings live with the tests (tests/fixtures/nvidia-smi).
DEFAULT_GPUS = "h200-x1"


def _install_replayed_gpus(name: str, recording: str) -> None:
    fixtures = paths.collection_root() / "tests" / "fixtures"
    source = fixtures / "nvidia-smi" / recording
    if not (source / "nvidia-smi-q.xml").is_file():
        available = sorted(p.name for p in (fixtures / "nvidia-smi").iterdir() if (p / "nvidia-smi-q.xml").is_file())
        raise UserError(f"no GPU recording named {recording}", f"pass --gpus with one of: {', '.join(available)}")
    _docker("exec", name, "mkdir", "-p", "/opt/fleetserve-lab", "/etc/fleetserve")
    _docker("cp", str(source), f"{name}:/opt/fleetserve-lab/gpus")
    _docker("cp", str(fixtures / "bin" / "nvidia-smi"), f"{name}:/usr/local/bin/nvidia-smi")
    _docker("exec", name, "sh", "-c", "echo /opt/fleetserve-lab/gpus > /etc/fleetserve/fake-gpu-dir")


def up(count: int, image: str = IMAGE, build: bool = True, gpus: str = DEFAULT_GPUS) -> list[str]:
    """Start hosts 1..count (keeping running ones), remove any beyond count, write the inventory."""
    if count < 1:
        raise UserError(f"--hosts must be at least 1, got {count}", "pass --hosts N with N >= 1")
    require_docker()
    ensure_image(image, build=build)
    wanted = [f"{prefix()}{i}" for i in range(1, count + 1)]
    for name in existing_hosts():
        if name not in wanted:
            _docker("rm", "-f", "-v", name)
    for name in wanted:
        state = _docker("inspect", "-f", "{{.State.Running}}", name, check=False)
        if state.returncode == 0 and state.stdout.strip() == "true":
            continue
        if state.returncode == 0:
            _docker("rm", "-f", "-v", name)
        _docker("run", "-d", "--name", name, "--hostname", name, "--label", f"{LABEL}={lab_name()}",
                *SYSTEMD_RUN_ARGS, image)
    for name in wanted:
        _wait_for_systemd(name)
        _install_replayed_gpus(name, gpus)
    write_inventory(wanted)
    return wanted


def down() -> list[str]:
    removed = existing_hosts() if _docker("version", check=False, timeout=30).returncode == 0 else []
    for name in removed:
        _docker("rm", "-f", "-v", name)
    paths.lab_inventory().unlink(missing_ok=True)
    return removed


def _wait_for_systemd(name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = _docker("exec", name, "systemctl", "is-system-running", check=False, timeout=30)
        if proc.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.3)
    raise UserError(f"lab host {name} did not finish booting systemd within {timeout:.0f}s",
                    f"inspect it with `docker logs {name}`; then `fleetserve lab down` and try again")


def write_inventory(hosts: list[str]) -> Path:
    path = paths.lab_inventory()
    lines = [
        "---",
        "# Written by `fleetserve lab up`; `fleetserve lab down` removes it. Do not edit.",
        "# Connection settings and lab defaults: inventories/lab/group_vars/.",
        "all:",
        "  children:",
        "    lab:",
        "      hosts:",
        *[f"        {h}: {{}}" for h in hosts],
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
