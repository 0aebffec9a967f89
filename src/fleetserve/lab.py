"""The local lab: systemd test hosts as Docker containers, the peers the full job needs, and the inventory.

The hosts boot the image built by scripts/lab/build-image.sh (Debian 12 + systemd, built locally:
our machines have no registry). `--privileged` is unavailable here, so the containers get the
explicit capability set systemd needs.

site.yml runs end to end on the lab with no GPU and no internet beyond PyPI, because `lab up` also
brings what a real fleet gets from outside:
- a model hub: olah (a real hub-compatible server, offline) serving the catalog's tiny lab model from
  a local git mirror, on the controller, bound to the lab network's gateway (the address the
  containers reach the controller at);
- the engine: a wheel directory, mounted read-only into every host, holding the engine simulator
  built as `sglang==<version>` for each version a rollout can move between, plus the downloader's
  pinned wheels, so uv and pip install from it with `--no-index` as from a private index.
Workers and routers are labelled containers on one network, so they resolve each other by name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from fleetserve import paths
from fleetserve.errors import UserError

IMAGE = "fleetserve/lab-systemd:bookworm"
LABEL = "io.fleetserve.lab"
ROLE_LABEL = "io.fleetserve.lab.role"
# The catalog's lab model (roles/preflight/vars/models.yml, fleetserve-lab-tiny-m2) and its shape.
MODEL_REPO = "local-org/tiny-minimax-m2"
MODEL_SHARDS = 3
# A second revision of it (a branch beside main, other weights): a model-revision rollout moves to it,
#   fleetserve rollout -e preflight_revision=lab-v2
MODEL_REVISION_2 = "lab-v2"
# The default SGLang pin and the other allowed one: a rollout on the lab moves between them.
ENGINE_VERSIONS = ("0.5.23", "0.5.4.post1")
WHEELS_IN_HOST = "/opt/fleetserve-lab/wheels"
ORIGIN_PORTS = range(18300, 18400)


def lab_name() -> str:
    """Several labs can share one Docker engine (the test suite uses its own): FLEETSERVE_LAB names it."""
    return os.environ.get("FLEETSERVE_LAB", "fleetserve")


def prefix() -> str:
    return f"{lab_name()}-lab-"


def network_name() -> str:
    return f"{lab_name()}-lab-net"


def state_dir() -> Path:
    """The lab's own files on the controller: hub mirror, wheels, olah's pid and log, the API key."""
    path = paths.state_dir() / "lab" / lab_name()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


# How every systemd test host is started (lab, weights fan-out test and bench): what systemd needs
# without --privileged.
SYSTEMD_RUN_ARGS = [
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "NET_ADMIN",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "seccomp=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--stop-signal",
    "SIGRTMIN+3",
    # uv ignores the system CA store; the lab sits behind a TLS-intercepting proxy. Real hosts don't need it.
    "-e",
    "UV_NATIVE_TLS=1",
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
        raise UserError(
            f"building {image} failed:\n{proc.stderr.strip()[-1500:]}", "run scripts/lab/build-image.sh as root"
        )


def _host_sort_key(name: str) -> tuple[int, int]:
    tail = name[len(prefix()) :]
    if tail.startswith("router-"):
        return (1, int(tail.rsplit("-", 1)[1]))
    return (0, int(tail)) if tail.isdigit() else (2, 0)


def existing_hosts(role: str | None = None) -> list[str]:
    """This lab's containers (workers first, then routers); ``role`` is "worker" or "router"."""
    filters = ["--filter", f"label={LABEL}={lab_name()}"]
    if role:
        filters += ["--filter", f"label={ROLE_LABEL}={role}"]
    proc = _docker("ps", "-a", *filters, "--format", "{{.Names}}")
    return sorted((n for n in proc.stdout.split() if n.startswith(prefix())), key=_host_sort_key)


# The lab has no GPUs: each worker gets nvidia-smi replaying output recorded on a real host, so the
# preflight role reads real GPU facts. The recordings live with the tests (tests/fixtures/nvidia-smi).
DEFAULT_GPUS = "h200-x1"


def _install_replayed_gpus(name: str, recording: str, with_nvidia_smi: bool = True) -> None:
    fixtures = paths.collection_root() / "tests" / "fixtures"
    source = fixtures / "nvidia-smi" / recording
    if not (source / "nvidia-smi-q.xml").is_file():
        available = sorted(p.name for p in (fixtures / "nvidia-smi").iterdir() if (p / "nvidia-smi-q.xml").is_file())
        raise UserError(f"no GPU recording named {recording}", f"pass --gpus with one of: {', '.join(available)}")
    if _docker("exec", name, "test", "-d", "/opt/fleetserve-lab/gpus", check=False).returncode == 0:
        return
    _docker("exec", name, "mkdir", "-p", "/opt/fleetserve-lab", "/etc/fleetserve")
    _docker("cp", str(source), f"{name}:/opt/fleetserve-lab/gpus")
    if with_nvidia_smi:
        _docker("cp", str(fixtures / "bin" / "nvidia-smi"), f"{name}:/usr/local/bin/nvidia-smi")
    _docker("exec", name, "sh", "-c", "echo /opt/fleetserve-lab/gpus > /etc/fleetserve/fake-gpu-dir")


# A bare worker (`lab up --bare`) is a GPU host as it arrives: no driver, no nvidia-smi. Its PCI list is
# the one recorded on the real host (tests/fixtures/pci/<gpus>/devices, mounted over /sys/bus/pci/devices),
# and the lab's apt repository holds the stand-in driver packages, whose nvidia-smi replays that host's
# recording once site.yml has installed them (scripts/testenv/fake_nvidia_apt_repo.sh).
BARE_LABEL = "io.fleetserve.lab.bare"
APT_REPO_IN_HOST = "/srv/fleetserve-lab-apt"


def _bare_mounts(gpus: str) -> list[str]:
    root = paths.collection_root()
    pci = root / "tests" / "fixtures" / "pci" / gpus / "devices"
    if not pci.is_dir():
        recorded = sorted(p.name for p in (root / "tests" / "fixtures" / "pci").iterdir() if (p / "devices").is_dir())
        raise UserError(
            f"no PCI recording of {gpus} for bare hosts",
            f"pass --gpus with one of: {', '.join(recorded)} (recordings in tests/fixtures/pci/)",
        )
    script = root / "scripts" / "testenv" / "fake_nvidia_apt_repo.sh"
    repo = _run(["bash", str(script), str(state_dir() / "apt")], "building the stand-in driver repository")
    return ["-v", f"{pci}:/sys/bus/pci/devices:ro", "-v", f"{repo.strip().splitlines()[-1]}:{APT_REPO_IN_HOST}:ro"]


def _install_bare_host(name: str, recording: str) -> None:
    """The GPUs' recording (what the stand-in nvidia-smi replays once installed) and the driver repository."""
    _install_replayed_gpus(name, recording, with_nvidia_smi=False)
    _docker(
        "exec",
        name,
        "sh",
        "-c",
        f"echo 'deb [trusted=yes] file:{APT_REPO_IN_HOST} ./' > /etc/apt/sources.list.d/fleetserve-lab-nvidia.list",
    )


def up(
    count: int, image: str = IMAGE, build: bool = True, gpus: str = DEFAULT_GPUS, routers: int = 0, bare: bool = False
) -> list[str]:
    """Start workers 1..count and routers 1..routers (keeping running ones), the hub and the wheels;
    remove hosts beyond those; write the inventory. Returns every host name. ``bare``: workers without a
    driver (see _bare_mounts); a running worker of the other kind is replaced."""
    if count < 1:
        raise UserError(f"--hosts must be at least 1, got {count}", "pass --hosts N with N >= 1")
    if routers not in (0, 1):
        raise UserError(
            f"--routers must be 0 or 1, got {routers}", "pass --routers 1 for a router in front of the workers"
        )
    require_docker()
    ensure_image(image, build=build)
    gateway = _ensure_network()
    wheels = _ensure_wheels(with_router=routers > 0)
    origin = _ensure_origin(gateway)
    workers = [f"{prefix()}{i}" for i in range(1, count + 1)]
    router_hosts = [f"{prefix()}router-{i}" for i in range(1, routers + 1)]
    wanted = {**{w: "worker" for w in workers}, **{r: "router" for r in router_hosts}}
    for name in existing_hosts():
        if name not in wanted:
            _docker("rm", "-f", "-v", name)
    bare_mounts = _bare_mounts(gpus) if bare else []
    for name, role in wanted.items():
        want_bare = "1" if bare and role == "worker" else ""
        state = _docker("inspect", "-f", f'{{{{.State.Running}}}} {{{{index .Config.Labels "{BARE_LABEL}"}}}}', name, check=False)
        running, _, was_bare = state.stdout.strip().partition(" ")
        if state.returncode == 0 and running == "true" and was_bare == want_bare:
            continue
        if state.returncode == 0:
            _docker("rm", "-f", "-v", name)
        _docker(
            "run",
            "-d",
            "--name",
            name,
            "--hostname",
            name,
            "--network",
            network_name(),
            "--label",
            f"{LABEL}={lab_name()}",
            "--label",
            f"{ROLE_LABEL}={role}",
            "--label",
            f"{BARE_LABEL}={want_bare}",
            "-v",
            f"{wheels}:{WHEELS_IN_HOST}:ro",
            *(bare_mounts if want_bare else []),
            *SYSTEMD_RUN_ARGS,
            image,
        )
    for name in wanted:
        _wait_for_systemd(name)
    for name in workers:
        if bare:
            _install_bare_host(name, gpus)
        else:
            _install_replayed_gpus(name, gpus)
    write_inventory(workers, router_hosts, hub_url=origin["url"], api_key=api_key())
    return list(wanted)


def down() -> list[str]:
    """Remove everything `up` started: containers, the hub process, the network, the inventory."""
    docker_up = _docker("version", check=False, timeout=30).returncode == 0
    removed = existing_hosts() if docker_up else []
    for name in removed:
        _docker("rm", "-f", "-v", name)
    _stop_origin()
    if docker_up and _docker("network", "inspect", network_name(), check=False).returncode == 0:
        _docker("network", "rm", network_name())
    paths.lab_inventory().unlink(missing_ok=True)
    return removed


def status() -> dict:
    origin = _origin_record()
    alive = bool(origin) and _pid_alive(origin.get("pid"))
    return {
        "lab": lab_name(),
        "workers": existing_hosts("worker"),
        "routers": existing_hosts("router"),
        "network": network_name(),
        "hub": {"url": origin.get("url"), "running": alive} if origin else None,
        "inventory": str(paths.lab_inventory()) if paths.lab_inventory().exists() else None,
    }


def api_key() -> str:
    """The lab's API key: random per lab, kept 0600 beside its state; the engines and router get it
    from the (0600, git-ignored) lab inventory, as a real fleet gets it from the vault."""
    path = state_dir() / "api_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"fs-lab-{secrets.token_hex(16)}\n")
    return path.read_text().strip()


def _ensure_network() -> str:
    """Create the lab network; return its gateway, where the containers reach the controller."""
    net = network_name()
    if _docker("network", "inspect", net, check=False).returncode != 0:
        _docker("network", "create", "--label", f"{LABEL}={lab_name()}", net)
    return _docker("network", "inspect", net, "-f", "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()


def _ensure_wheels(*, with_router: bool) -> Path:
    """The lab's package index: engine-sim as each sglang version, the downloader's pinned wheels and,
    for a lab with a router, the gateway's pinned wheels."""
    root = paths.collection_root()
    wheels = state_dir() / "wheels"
    wheels.mkdir(exist_ok=True)
    builder = root / "tests" / "engine_sim" / "build_wheel.py"
    for version in ENGINE_VERSIONS:
        _run([sys.executable, str(builder), "sglang", version, str(wheels)], "building the engine-sim wheel")
    pins = yaml.safe_load((root / "roles" / "weights" / "defaults" / "main.yml").read_text())["weights_pip_packages"]
    stamp = wheels / ".downloader-pins"
    if not stamp.exists() or stamp.read_text() != "\n".join(pins):
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--dest",
                str(wheels),
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "manylinux_2_28_x86_64",
                *pins,
            ],
            "downloading the weights downloader's wheels from PyPI",
        )
        stamp.write_text("\n".join(pins))
    if with_router:
        cached = (
            _run(
                ["bash", str(root / "scripts" / "testenv" / "router_wheels.sh")],
                "downloading the router's wheels from PyPI",
            )
            .strip()
            .splitlines()[-1]
        )
        for wheel in Path(cached).glob("*.whl"):
            if not (wheels / wheel.name).exists():
                shutil.copy2(wheel, wheels / wheel.name)
    return wheels


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise UserError(
            f"{what} failed:\n{(proc.stderr or proc.stdout).strip()[-1500:]}",
            "fix the error above (PyPI must be reachable for the first `lab up`), then run it again",
        )
    return proc.stdout


def _origin_record() -> dict:
    path = state_dir() / "hub.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"olah" in cmdline


def _free_port(host: str) -> int:
    for port in ORIGIN_PORTS:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise UserError(
        f"no free port in {ORIGIN_PORTS.start}-{ORIGIN_PORTS.stop - 1} on {host} for the lab hub",
        "stop another lab (`FLEETSERVE_LAB=<name> fleetserve lab down`) and try again",
    )


def _ensure_origin(gateway: str) -> dict:
    """olah on the gateway, serving the lab model; reused while it runs at the same address."""
    record = _origin_record()
    if record.get("gateway") == gateway and _pid_alive(record.get("pid")):
        return record
    _stop_origin()
    root = paths.collection_root()
    base = state_dir() / "hub"
    mirrors, cache = base / "mirrors", base / "cache"
    maker = root / "scripts" / "testenv" / "make_tiny_repos.py"
    # The lab's own venv (requirements/lab.txt): olah, and the numpy + safetensors the model maker needs,
    # which the controller venv does not have.
    venv = _run(["bash", str(root / "scripts" / "testenv" / "olah.sh")], "installing the lab venv (olah)")
    venv = venv.strip().splitlines()[-1]
    python = os.path.join(venv, "bin", "python")
    if not (mirrors / "models" / MODEL_REPO / ".git").exists():
        # Published once per lab: a second commit would be a new revision, and a re-deploy would fetch it.
        _run(
            [python, str(maker), "repo", str(mirrors), str(cache), MODEL_REPO, "--shards", str(MODEL_SHARDS)],
            "publishing the lab model to the hub mirror",
        )
    _run(
        [python, str(maker), "revision", str(mirrors), str(cache), MODEL_REPO, MODEL_REVISION_2],
        "publishing the lab model's second revision to the hub mirror",
    )
    port = _free_port(gateway)
    config = base / "olah.toml"
    config.write_text(
        _run(
            [python, str(maker), "olah-config", str(mirrors), str(cache), str(port), "--host", gateway],
            "writing the olah configuration",
        )
    )
    log = open(base / "olah.log", "w")  # noqa: SIM115 - handed to the child, which outlives this call
    proc = subprocess.Popen(
        [os.path.join(venv, "bin", "olah-cli"), "-c", str(config)],
        cwd=base,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    record = {"url": f"http://{gateway}:{port}", "pid": proc.pid, "gateway": gateway}
    (state_dir() / "hub.json").write_text(json.dumps(record))
    probe = f"{record['url']}/api/models/{MODEL_REPO}/revision/main"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(probe, timeout=2) as response:
                response.read()
            return record
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                tail = (base / "olah.log").read_text()[-1500:]
                _stop_origin()
                raise UserError(
                    f"the lab hub (olah) did not answer {probe}:\n{tail}",
                    f"read {base / 'olah.log'}; then `fleetserve lab down` and try again",
                ) from None
            time.sleep(0.3)


def _stop_origin() -> None:
    record = _origin_record()
    pid = record.get("pid")
    if _pid_alive(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    (state_dir() / "hub.json").unlink(missing_ok=True)


def _wait_for_systemd(name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = _docker("exec", name, "systemctl", "is-system-running", check=False, timeout=30)
        if proc.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.3)
    raise UserError(
        f"lab host {name} did not finish booting systemd within {timeout:.0f}s",
        f"inspect it with `docker logs {name}`; then `fleetserve lab down` and try again",
    )


def write_inventory(workers: list[str], routers: list[str], *, hub_url: str, api_key: str) -> Path:
    """Groups: lab_workers (engines) and routers, both under lab. The file holds the lab's API key,
    so it is 0600 (and git-ignored)."""
    inventory = {
        "all": {
            "vars": {
                "fleetserve_lab_hub_url": hub_url,
                "fleetserve_lab_wheels_dir": WHEELS_IN_HOST,
                "fleetserve_api_key": api_key,
            },
            "children": {
                "lab": {
                    "children": {
                        "lab_workers": {"hosts": {h: None for h in workers}},
                        "routers": {"hosts": {h: None for h in routers}},
                    }
                }
            },
        }
    }
    header = (
        "---\n# Written by `fleetserve lab up`; `fleetserve lab down` removes it. Do not edit.\n"
        "# Connection settings and lab defaults: inventories/lab/group_vars/.\n"
    )
    path = paths.lab_inventory()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(header + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False))
    os.chmod(path, 0o600)
    return path
