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

vLLM hosts (`lab up --vllm N`: the last N workers) run vLLM in Docker as a real fleet does: each boots the
lab image plus docker.io (scripts/lab/build-vllm-host-image.sh) with its own nested dockerd, into which
`lab up` loads the stand-ins for vllm/vllm-openai (engine-sim behind vLLM's entrypoints,
scripts/lab/vllm-images.sh): the release site.yml deploys, a rebuild of it under another tag (an image
rollout) and an image whose engine crashes at start (a rollout that must roll back). They sit in group
lab_vllm (inventories/lab/group_vars/lab_vllm: engine vllm, no registry pulls, no GPUs for Docker) and
serve behind the same router as the SGLang hosts.
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
from concurrent.futures import ThreadPoolExecutor
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
# vLLM hosts: their image, their label, and the repository of the stand-in vLLM images (tags
# v<version>, v<version>-r2 and v<version>-crash: scripts/lab/vllm-images.sh).
VLLM_HOST_IMAGE = "fleetserve/lab-systemd-docker:bookworm"
ENGINE_LABEL = "io.fleetserve.lab.engine"
VLLM_REPOSITORY = "fleetserve/lab-vllm-sim"


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
# Each host's models directory is a disk of its own, small and RAM-backed (only what is written takes memory):
# the tiny lab model needs under 4 MiB a revision, and a test can fill it to stand for a full disk.
MODELS_DISK_ARGS = ["--tmpfs", "/srv/models:size=64m,mode=0755"]

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
    return ["-v", f"{pci}:/sys/bus/pci/devices:ro"]


def _apt_repo_mount() -> list[str]:
    """The stand-in NVIDIA packages (driver, container toolkit, DCGM and its exporter), mounted read-only in
    every worker: bare hosts install the driver from it, vLLM hosts the toolkit, SGLang hosts the DCGM exporter
    (inventories/lab/group_vars/lab_workers/dcgm.yml)."""
    script = paths.collection_root() / "scripts" / "testenv" / "fake_nvidia_apt_repo.sh"
    repo = _run(["bash", str(script), str(state_dir() / "apt")], "building the stand-in NVIDIA package repository")
    return ["-v", f"{repo.strip().splitlines()[-1]}:{APT_REPO_IN_HOST}:ro"]


def _add_apt_repo(name: str) -> None:
    """The worker's apt source for the mounted repository (skipped on a worker started without the mount)."""
    _docker(
        "exec",
        name,
        "sh",
        "-c",
        f"test ! -d {APT_REPO_IN_HOST} || "
        f"echo 'deb [trusted=yes] file:{APT_REPO_IN_HOST} ./' > /etc/apt/sources.list.d/fleetserve-lab-nvidia.list",
    )


def _install_bare_host(name: str, recording: str) -> None:
    """The GPUs' recording (what the stand-in nvidia-smi replays once installed) and the driver repository."""
    _install_replayed_gpus(name, recording, with_nvidia_smi=False)
    _add_apt_repo(name)


def up(
    count: int,
    image: str = IMAGE,
    build: bool = True,
    gpus: str = DEFAULT_GPUS,
    routers: int = 0,
    bare: bool = False,
    vllm: int = 0,
) -> list[str]:
    """Start workers 1..count and routers 1..routers (keeping running ones), the hub and the wheels;
    remove hosts beyond those; write the inventory. Returns every host name. ``bare``: workers without a
    driver (see _bare_mounts); ``vllm``: the last N workers are vLLM hosts (see the module's docstring);
    a running worker of another kind is replaced."""
    if count < 1:
        raise UserError(f"--hosts must be at least 1, got {count}", "pass --hosts N with N >= 1")
    if routers not in (0, 1):
        raise UserError(
            f"--routers must be 0 or 1, got {routers}", "pass --routers 1 for a router in front of the workers"
        )
    if not 0 <= vllm <= count:
        raise UserError(
            f"--vllm must be between 0 and --hosts ({count}), got {vllm}", "pass --vllm N with N <= --hosts"
        )
    if vllm and bare:
        raise UserError("--vllm and --bare cannot be combined", "start vLLM hosts with a driver: drop --bare")
    require_docker()
    ensure_image(image, build=build)
    vllm_image = _ensure_vllm_host_image(image) if vllm else ""
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
    vllm_workers = workers[count - vllm :]
    vllm_mounts = _vllm_mounts() if vllm else []
    apt_mount = _apt_repo_mount()
    for name, role in wanted.items():
        want_bare = "1" if bare and role == "worker" else ""
        want_engine = "vllm" if name in vllm_workers else ""
        labels = f'{{{{index .Config.Labels "{BARE_LABEL}"}}}}/{{{{index .Config.Labels "{ENGINE_LABEL}"}}}}'
        state = _docker("inspect", "-f", f"{{{{.State.Running}}}} {labels}", name, check=False)
        running, _, kind = state.stdout.strip().partition(" ")
        if state.returncode == 0 and running == "true" and kind == f"{want_bare}/{want_engine}":
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
            "--label",
            f"{ENGINE_LABEL}={want_engine}",
            "-v",
            f"{wheels}:{WHEELS_IN_HOST}:ro",
            *(apt_mount if role == "worker" else []),
            *(bare_mounts if want_bare else []),
            *MODELS_DISK_ARGS,
            *(vllm_mounts if want_engine else []),
            *SYSTEMD_RUN_ARGS,
            vllm_image if want_engine else image,
        )
    for name in wanted:
        _wait_for_systemd(name)
    for name in workers:
        if bare:
            _install_bare_host(name, gpus)
        else:
            _install_replayed_gpus(name, gpus)
            _add_apt_repo(name)
    if vllm_workers:
        _install_vllm_hosts(vllm_workers)
    write_inventory(workers, router_hosts, hub_url=origin["url"], api_key=api_key(), vllm=vllm_workers)
    return list(wanted)


def vllm_version() -> str:
    """The vLLM release site.yml deploys for the lab model: the catalog's default (the images' version)."""
    catalog = yaml.safe_load((paths.collection_root() / "roles" / "preflight" / "vars" / "models.yml").read_text())
    models = catalog["__preflight_catalog"]
    entry = models["fleetserve-lab-tiny-m2"]
    while "vllm" not in entry.get("engines", {}):
        entry = models[entry["inherits"]]
    return str(entry["engines"]["vllm"]["default"])


def vllm_images() -> dict[str, str]:
    """The stand-in vLLM images every vLLM host holds: {"current", "rebuilt", "crashing"} -> image ref."""
    base = f"{VLLM_REPOSITORY}:v{vllm_version()}"
    return {"current": base, "rebuilt": f"{base}-r2", "crashing": f"{base}-crash"}


def _ensure_vllm_host_image(base: str) -> str:
    script = paths.collection_root() / "scripts" / "lab" / "build-vllm-host-image.sh"
    return _run(["bash", str(script), base, VLLM_HOST_IMAGE], "building the vLLM host image").strip().splitlines()[-1]


def _vllm_mounts() -> list[str]:
    """/var/lib/docker as an anonymous volume (the nested dockerd gets overlay2, `rm -v` removes it)."""
    return ["-v", "/var/lib/docker"]


def _vllm_images_tar() -> Path:
    """The stand-in images, built on the controller and saved once into one tarball (shared layers once);
    saved again when an image changed."""
    script = paths.collection_root() / "scripts" / "lab" / "vllm-images.sh"
    refs = _run(["bash", str(script), vllm_version(), VLLM_REPOSITORY], "building the stand-in vLLM images").split()
    ids = _docker("image", "inspect", "-f", "{{.Id}}", *refs).stdout.split()
    tar, stamp = state_dir() / "vllm-images.tar", state_dir() / "vllm-images.ids"
    if not tar.exists() or not stamp.exists() or stamp.read_text() != " ".join(refs + ids):
        _docker("image", "save", "-o", str(tar), *refs, timeout=300)
        stamp.write_text(" ".join(refs + ids))
    return tar


def _install_vllm_hosts(hosts: list[str]) -> None:
    """Each vLLM host: its dockerd up and the images loaded (skipped where they are)."""
    tar = _vllm_images_tar()
    wanted = list(vllm_images().values())

    def install(name: str) -> None:
        deadline = time.monotonic() + 60
        while _docker("exec", name, "docker", "version", check=False, timeout=30).returncode != 0:
            if time.monotonic() > deadline:
                raise UserError(
                    f"the nested Docker engine of {name} did not start within 60s",
                    f"read `docker exec {name} journalctl -u docker`; then `fleetserve lab down` and try again",
                )
            _docker("exec", name, "systemctl", "start", "docker.service", check=False, timeout=60)
            time.sleep(0.5)
        if _docker("exec", name, "docker", "image", "inspect", *wanted, check=False).returncode == 0:
            return
        with open(tar, "rb") as handle:
            proc = subprocess.run(
                ["docker", "exec", "-i", name, "docker", "load", "-q"],
                stdin=handle,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        if proc.returncode != 0:
            raise UserError(
                f"loading the vLLM images into {name} failed: {proc.stderr.strip()[-800:]}",
                "`fleetserve lab down`, then `lab up` again",
            )

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        list(pool.map(install, hosts))


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
        "vllm": [h for h in existing_hosts("worker") if _engine_label(h) == "vllm"],
        "network": network_name(),
        "hub": {"url": origin.get("url"), "running": alive} if origin else None,
        "inventory": str(paths.lab_inventory()) if paths.lab_inventory().exists() else None,
    }


def _engine_label(name: str) -> str:
    return _docker("inspect", "-f", f'{{{{index .Config.Labels "{ENGINE_LABEL}"}}}}', name, check=False).stdout.strip()


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


def write_inventory(
    workers: list[str], routers: list[str], *, hub_url: str, api_key: str, vllm: list[str] | None = None
) -> Path:
    """Groups: lab_workers (engines; its vLLM hosts also in its child group lab_vllm) and routers, both
    under lab. The file holds the lab's API key, so it is 0600 (and git-ignored)."""
    workers_group: dict = {"hosts": {h: None for h in workers}}
    if vllm:
        workers_group["children"] = {"lab_vllm": {"hosts": {h: None for h in vllm}}}
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
                        "lab_workers": workers_group,
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
