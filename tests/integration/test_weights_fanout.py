"""The weights role on three systemd lab containers: the seed reads olah once, the others copy host to host.

With three hosts the one copy task holds a real pipeline: t2 copies from the seed, t3 (the seed's second
receiver) waits for t2 to announce its verified copy through t2's peer server before it starts.
Real peers only: olah (hub-compatible, offline), Docker lab hosts on the image fleetserve/lab-systemd:bookworm,
rsync from Debian. Missing Docker or image fails the test. Containers and network are prefixed fs-fanout-.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetserve.lab import SYSTEMD_RUN_ARGS

from test_weights_olah import ROOT, digests, free_port, olah_server

pytestmark = pytest.mark.integration

IMAGE = os.environ.get("FLEETSERVE_LAB_IMAGE", "fleetserve/lab-systemd:bookworm")
NET = "fs-fanout-net"
HOSTS = ["fs-fanout-t1", "fs-fanout-t2", "fs-fanout-t3"]
# Everything the fan-out leaves on a host while it runs; none of it may survive the play.
FANOUT_LEFTOVERS = [
    "/run/fleetserve-weights-rsyncd.secrets",
    "/run/fleetserve-weights-rsyncd.conf",
    "/run/fleetserve-weights-rsyncd",
]
REPO = "local-org/fanout-m2"
MODEL_DIR = "/srv/models/fanout-m2"
PIP = ["huggingface_hub==2.4.0", "hf-xet==1.8.0"]


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def wheelhouse() -> Path:
    d = Path(os.environ.get("FLEETSERVE_CACHE", Path.home() / ".cache" / "fleetserve")) / "wheels-weights"
    if not (d / ".ready").exists():
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--dest",
                str(d),
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "manylinux_2_28_x86_64",
                *PIP,
            ],
            check=True,
        )
        (d / ".ready").touch()
    return d


@pytest.fixture(scope="module")
def lab():
    docker("image", "inspect", IMAGE)  # fails the test when the lab image is missing (scripts/lab/build-image.sh)
    for h in HOSTS:
        docker("rm", "-f", h, check=False)
    docker("network", "rm", NET, check=False)
    docker("network", "create", NET)
    gateway = docker("network", "inspect", NET, "-f", "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()
    for h in HOSTS:
        docker(
            "run",
            "-d",
            "--name",
            h,
            "--hostname",
            h,
            "--network",
            NET,
            *SYSTEMD_RUN_ARGS,
            "-v",
            "%s:/srv/wheels:ro" % wheelhouse(),
            IMAGE,
        )
    for h in HOSTS:
        deadline = time.time() + 90
        while not re.search(
            "running|degraded", docker("exec", h, "systemctl", "is-system-running", check=False).stdout
        ):
            assert time.time() < deadline, "lab host %s did not boot" % h
            time.sleep(0.5)
    yield gateway
    for h in HOSTS:
        docker("rm", "-f", h, check=False)
    docker("network", "rm", NET, check=False)


@pytest.fixture(scope="module")
def origin(lab, tmp_path_factory):
    with olah_server(
        tmp_path_factory.mktemp("olah-fanout"),
        {REPO: {"shards": 3, "shard_mb": 2}},
        host=lab,
        ports=range(18230, 18240),
    ) as o:
        yield o


def play(tmp_path, ansible_env, *extra_args, check=False):
    inv = tmp_path / "inventory.ini"
    inv.write_text(
        "[lab]\n%s\n[lab:vars]\nansible_connection=community.docker.docker\n"
        "ansible_python_interpreter=/usr/bin/python3\n" % "\n".join(HOSTS)
    )
    cmd = ["ansible-playbook", "-i", str(inv), str(ROOT / "playbooks" / "weights.yml"), *extra_args]
    if check:
        cmd.append("--check")
    env = dict(ansible_env, ANSIBLE_PIPELINING="True", ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    play.last = proc.stdout
    return {h: int(re.search(r"^%s\s+: .*changed=(\d+)" % h, proc.stdout, re.M).group(1)) for h in HOSTS}


def assert_fanout_cleaned_up():
    for h in HOSTS:
        assert (
            docker("exec", h, "systemctl", "is-active", "fleetserve-weights-rsyncd", check=False).stdout.strip()
            == "inactive"
        )
        left = docker("exec", h, "ls", "-d", *FANOUT_LEFTOVERS, check=False)
        assert left.stdout == "", "left on %s: %s" % (h, left.stdout)
        assert docker("exec", h, "sh", "-c", "ls -d /tmp/fleetserve-peer-* 2>/dev/null", check=False).stdout == ""


def host_digests(host, tmp_path) -> dict:
    out = tmp_path / host
    subprocess.run(["rm", "-rf", str(out)], check=True)
    docker("cp", "%s:%s" % (host, MODEL_DIR), str(out))
    return digests(out)


def test_seed_reads_origin_once_then_peer_copies_and_reruns_change_nothing(lab, origin, tmp_path, ansible_env):
    extra = [
        "-e",
        json.dumps(
            {
                "weights_repo_id": REPO,
                "weights_dir": MODEL_DIR,
                "weights_endpoint": origin["url"],
                "weights_pip_extra_args": "--no-index --find-links /srv/wheels",
            }
        ),
    ]
    play(tmp_path, ansible_env, *extra, check=True)
    for h in HOSTS:
        assert docker("exec", h, "test", "-e", "/srv/models", check=False).returncode == 1, "check mode wrote on " + h

    first = play(tmp_path, ansible_env, *extra)
    assert all(first[h] > 0 for h in HOSTS)
    # The seed downloads in the background: the other hosts check their copies, install rsync (only because
    # a copy is to be made), start the peer servers and copy (streaming from the seed, then waiting for its
    # announcement) before the play waits for the download itself.
    at = 0
    for task in (
        "Resolve the snapshot's commit and manifest on the origin",
        "Download the snapshot from the origin",
        "Check this host's copy against the seed's manifest",
        "Install rsync on the hosts that only copy",
        "Install the venv and rsync packages",
        "Start the peer server",
        "Copy from a host that holds a verified copy",
        "Wait until the seed has downloaded and verified the snapshot",
    ):
        at = play.last.find("TASK [fleetserve.minimax.weights : Weights | " + task, at)
        assert at >= 0, "task %r missing or out of order" % task
    # Only the seed has a downloader at all: the others can only have copied from a peer.
    venvs = [
        h for h in HOSTS if docker("exec", h, "test", "-e", "/opt/fleetserve/hf-venv", check=False).returncode == 0
    ]
    assert venvs == [HOSTS[0]]
    # (No order of publication is asserted: a receiver that streamed every file in and hashed it right
    # publishes without waiting for its source, possibly before it; the plan's order is unit-tested.)
    source = digests(origin["mirrors"] / "models" / REPO)
    for h in HOSTS:
        assert host_digests(h, tmp_path) == source
    assert_fanout_cleaned_up()
    marker = json.loads(docker("exec", HOSTS[2], "cat", MODEL_DIR + "/.fleetserve-weights.json").stdout)
    assert marker["revision"] == origin["commits"][REPO]

    assert play(tmp_path, ansible_env, *extra) == {h: 0 for h in HOSTS}
    assert "Weights | Start the peer server" not in play.last  # nothing to copy: the fan-out is not even included
    # One read on the seed found the downloader's packages and venv in place; the others install rsync only to copy.
    assert "Weights | Install the venv and rsync packages" not in play.last
    assert play(tmp_path, ansible_env, *extra, check=True) == {h: 0 for h in HOSTS}

    # A same-size corruption on one peer is found by hashing, and only that host gets a new copy.
    shard = MODEL_DIR + "/model-00002-of-00003.safetensors"
    before = {h: docker("exec", h, "stat", "-c", "%i", MODEL_DIR + "/.fleetserve-weights.json").stdout for h in HOSTS}
    docker(
        "exec",
        HOSTS[2],
        "python3",
        "-c",
        "f=open(%r,'r+b');f.seek(-1,2);b=f.read(1);f.seek(-1,2);f.write(bytes([b[0]^255]))" % shard,
    )
    corrupted = host_digests(HOSTS[2], tmp_path)
    would = play(tmp_path, ansible_env, *extra, check=True)
    assert would[HOSTS[2]] > 0 and would[HOSTS[1]] == 0
    assert host_digests(HOSTS[2], tmp_path) == corrupted != source  # check mode repaired nothing
    assert_fanout_cleaned_up()  # and started no peer server

    repaired = play(tmp_path, ansible_env, *extra)
    assert repaired[HOSTS[1]] == 0  # neither a source nor a receiver this time
    assert repaired[HOSTS[2]] > 0
    after = {h: docker("exec", h, "stat", "-c", "%i", MODEL_DIR + "/.fleetserve-weights.json").stdout for h in HOSTS}
    assert [h for h in HOSTS if after[h] != before[h]] == [HOSTS[2]]
    assert host_digests(HOSTS[2], tmp_path) == source
    assert_fanout_cleaned_up()


@contextlib.contextmanager
def throttled_proxy(listen, port, target_port, rate):
    """The bench's bandwidth-capped, byte-counting TCP proxy (bench/weights_fanout.py) to 127.0.0.1:target_port."""
    spec = importlib.util.spec_from_file_location("weights_fanout_bench", ROOT / "bench" / "weights_fanout.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    proxy = bench.ThrottledProxy(listen, port, target_port, rate)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_receivers_stream_each_shard_while_the_seed_still_downloads(lab, tmp_path_factory, tmp_path, ansible_env):
    slow_repo = "local-org/fanout-slow"
    port = free_port(range(18250, 18260), lab)
    with (
        olah_server(
            tmp_path_factory.mktemp("olah-slow"),
            {slow_repo: {"shards": 6, "shard_mb": 2}},
            ports=range(18240, 18250),
            netloc="%s:%d" % (lab, port),
        ) as o,
        throttled_proxy(lab, port, int(o["url"].rsplit(":", 1)[1]), 1024 * 1024) as proxy,
    ):
        # ~12 MB at 1 MiB/s, one file at a time: a shard lands at the seed every 2 s, and the seed is still
        # downloading when the other hosts reach the copy task.
        extra = {
            "weights_max_workers": 1,
            "weights_repo_id": slow_repo,
            "weights_dir": "/srv/models/fanout-slow",
            "weights_endpoint": "http://%s:%d" % (lab, port),
            "weights_pip_extra_args": "--no-index --find-links /srv/wheels",
            "fleetserve_secure_logging": False,  # to read each copy's result; nothing secret is in this lab
        }
        changed = play(tmp_path, ansible_env, "-v", "-e", json.dumps(extra))
        assert all(changed[h] > 0 for h in HOSTS)
        source = digests(o["mirrors"] / "models" / slow_repo)
        for h in HOSTS:
            out = tmp_path / h
            docker("cp", "%s:/srv/models/fanout-slow" % h, str(out))
            assert digests(out) == source
        assert_fanout_cleaned_up()
        # The origin served one copy, and the seed's first receiver took shards from its staging directory
        # while the download ran (hf_snapshot's streamed count, printed with -v once no_log is off).
        shards = sum(f.stat().st_size for f in (o["mirrors"] / "models" / slow_repo).glob("*.safetensors"))
        assert shards <= proxy.sent < shards + 1e6
        streamed = [int(n) for n in re.findall(r'"streamed": (\d+)', play.last)]
        assert max(streamed, default=0) >= 3, streamed
        # The copies ran under the download, not after it: each receiver held its first shard before the
        # seed's last shard had landed. A file's ctime is when it arrived on that host (rsync -a keeps the
        # source's mtime; nothing touches the inodes after, the publish renames the directory).
        landed = {h: arrival_times(h, "/srv/models/fanout-slow") for h in HOSTS}
        seed_last = max(landed[HOSTS[0]].values())
        for h in HOSTS[1:]:
            first = min(landed[h], key=landed[h].get)
            assert landed[h][first] < seed_last, (h, first, landed[h][first], seed_last)


def arrival_times(host, directory):
    """{shard: ctime} of the safetensors files in ``directory`` on ``host`` (one clock: the lab's kernel)."""
    script = (
        "import json, os, sys; d = sys.argv[1]; "
        "print(json.dumps({n: os.stat(os.path.join(d, n)).st_ctime for n in os.listdir(d) if n.endswith('.safetensors')}))"
    )
    return json.loads(docker("exec", host, "python3", "-c", script, directory).stdout)
