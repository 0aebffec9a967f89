"""The weights role on two systemd lab containers: the seed reads olah once, the other host copies from it.

Real peers only: olah (hub-compatible, offline), Docker lab hosts on the image fleetserve/lab-systemd:bookworm,
rsync from Debian. Missing Docker or image fails the test. Containers and network are prefixed fs-weights-t.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetserve.lab import SYSTEMD_RUN_ARGS

from test_weights_olah import ROOT, digests, olah_server

IMAGE = os.environ.get("FLEETSERVE_LAB_IMAGE", "fleetserve/lab-systemd:bookworm")
NET = "fs-weights-tnet"
HOSTS = ["fs-weights-t1", "fs-weights-t2"]
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
    return {h: int(re.search(r"^%s\s+: .*changed=(\d+)" % h, proc.stdout, re.M).group(1)) for h in HOSTS}


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
    source = digests(origin["mirrors"] / "models" / REPO)
    for h in HOSTS:
        assert host_digests(h, tmp_path) == source
        assert (
            docker("exec", h, "systemctl", "is-active", "fleetserve-weights-rsyncd", check=False).stdout.strip()
            == "inactive"
        )
        assert docker("exec", h, "ls", "/etc/fleetserve/weights-rsync.pass", check=False).returncode != 0
    marker = json.loads(docker("exec", HOSTS[1], "cat", MODEL_DIR + "/.fleetserve-weights.json").stdout)
    assert marker["revision"] == origin["commits"][REPO]

    assert play(tmp_path, ansible_env, *extra) == {h: 0 for h in HOSTS}
    assert play(tmp_path, ansible_env, *extra, check=True) == {h: 0 for h in HOSTS}

    # A same-size corruption on the peer is found by hashing, and only that host gets a new copy.
    shard = MODEL_DIR + "/model-00002-of-00003.safetensors"
    docker(
        "exec",
        HOSTS[1],
        "python3",
        "-c",
        "f=open(%r,'r+b');f.seek(-1,2);b=f.read(1);f.seek(-1,2);f.write(bytes([b[0]^255]))" % shard,
    )
    repaired = play(tmp_path, ansible_env, *extra)
    assert repaired[HOSTS[1]] > 0
    assert host_digests(HOSTS[1], tmp_path) == source
