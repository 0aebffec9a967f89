"""hf_snapshot + model_weights_info end to end against olah (a real hub-compatible server, offline mode).

The repos are tiny MiniMax-shaped ones (scripts/testenv/make_tiny_repos.py) served from local git mirrors.
Each case runs the real modules through ansible-playbook on localhost.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REPO = "local-org/tiny-m2"
BIG = "local-org/big-m2"
PORTS = range(18210, 18220)
DEAD_PORT = 18299  # in our range, never listened on


def _load_maker():
    spec = importlib.util.spec_from_file_location("make_tiny_repos", ROOT / "scripts/testenv/make_tiny_repos.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def free_port(ports, host="127.0.0.1"):
    """The first of ``ports`` that nothing holds on ``host``."""
    for port in ports:
        try:
            socket.create_server((host, port)).close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free port on %s in %s-%s" % (host, ports[0], ports[-1]))


@contextlib.contextmanager
def olah_server(base: Path, repos: dict, host: str = "127.0.0.1", ports=PORTS, netloc: str = ""):
    """olah 0.5.4 offline, serving ``repos`` ({repo_id: make_repo kwargs}). Fails, never skips, without olah.

    ``netloc`` is the address olah hands to clients when they reach it through a proxy (default its own)."""
    venv = (
        subprocess.run(["bash", str(ROOT / "scripts/testenv/olah.sh")], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    mirrors, cache = base / "mirrors", base / "repos"
    maker = _load_maker()
    commits = {repo: maker.publish(mirrors, cache, repo, **kwargs) for repo, kwargs in repos.items()}
    port = free_port(ports, host)
    (base / "olah.toml").write_text(maker.olah_config(mirrors, cache, port, host, netloc))
    log = open(base / "olah.log", "w")
    proc = subprocess.Popen(
        [os.path.join(venv, "bin", "olah-cli"), "-c", str(base / "olah.toml")],
        cwd=base,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = "http://%s:%d" % (host, port)
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen("%s/api/models/%s/revision/main" % (url, next(iter(repos))), timeout=2).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("olah did not come up: %s" % (base / "olah.log").read_text()[-2000:])
                time.sleep(0.3)
        yield {"url": url, "mirrors": mirrors, "commits": commits}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def olah(tmp_path_factory):
    """REPO (3 small shards) and BIG (3 x 24 MiB shards, long enough to interrupt)."""
    with olah_server(tmp_path_factory.mktemp("olah"), {REPO: {"shards": 3}, BIG: {"shards": 3, "shard_mb": 24}}) as o:
        yield o


def digests(root: Path) -> dict:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def snapshot_play(dest, endpoint, repo=REPO, extra=None):
    args = {"repo_id": repo, "dest": str(dest), "endpoint": endpoint, "retries": 1, "retry_delay": 0.1}
    args.update(extra or {})
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Weights | Download the snapshot
      fleetserve.minimax.hf_snapshot: %s
      register: snap
    - name: Weights | Show the result
      ansible.builtin.debug:
        msg: "RESULT {{ snap | dict2items | rejectattr('key', 'eq', 'manifest') | items2dict | to_json }}"
""" % json.dumps(args)


def result_of(proc) -> dict:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if '"msg": "RESULT ' in x)
    return json.loads(json.loads(line.split('"msg": ', 1)[1]).split("RESULT ", 1)[1])


def failure_msg(proc) -> str:
    assert proc.returncode != 0, proc.stdout[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("fatal: "))
    return json.loads(line.split("=> ", 1)[1])["msg"]


def leftovers(parent: Path) -> list:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_check_download_rerun_and_verify(olah, tmp_path, run_playbook):
    dest = tmp_path / "models" / "tiny-m2"
    play = snapshot_play(dest, olah["url"])

    first_check = result_of(run_playbook(play, check=True))
    assert first_check["changed"] is True and first_check["download_bytes"] == first_check["bytes"] > 0
    assert not (tmp_path / "models").exists(), "check mode wrote to the host"

    first = result_of(run_playbook(play))
    assert first["changed"] is True
    assert first["revision"] == olah["commits"][REPO] and first["requested_revision"] == "main"
    assert digests(dest) == digests(olah["mirrors"] / "models" / REPO)
    assert json.loads((dest / ".fleetserve-weights.json").read_text())["revision"] == olah["commits"][REPO]
    assert leftovers(tmp_path / "models") == ["tiny-m2"], "staging left behind"

    again = result_of(run_playbook(play))
    assert again["changed"] is False and again["download_bytes"] == 0
    assert result_of(run_playbook(play, check=True))["changed"] is False

    pinned = result_of(run_playbook(snapshot_play(dest, olah["url"], extra={"revision": olah["commits"][REPO]})))
    assert pinned["changed"] is False and pinned["requested_revision"] == olah["commits"][REPO]


def verify_play(path, manifest=None):
    args = {"path": str(path)}
    if manifest:
        args["manifest"] = manifest
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Weights | Verify
      fleetserve.minimax.model_weights_info: %s
""" % json.dumps(args)


def test_corrupted_shard_is_detected_then_fetched_again(olah, tmp_path, run_playbook):
    dest = tmp_path / "tiny-m2"
    play = snapshot_play(dest, olah["url"])
    result_of(run_playbook(play))
    shard = dest / "model-00002-of-00003.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # same size: only hashing can tell
    shard.write_bytes(bytes(data))

    msg = failure_msg(run_playbook(verify_play(dest)))
    # olah serves plain git blobs (no LFS oid), so the blob id is the hash checked here; sha256 is unit-tested.
    assert msg.startswith(
        "%s does not match %s@%s: 1 problem(s), first: model-00002-of-00003.safetensors git_sha1 "
        % (dest, REPO, olah["commits"][REPO])
    )
    assert msg.endswith("run the weights role to fetch it again")

    repaired = result_of(run_playbook(play))
    assert repaired["changed"] is True and repaired["refetched"] == ["model-00002-of-00003.safetensors"]
    assert digests(dest) == digests(olah["mirrors"] / "models" / REPO)
    assert run_playbook(verify_play(dest)).returncode == 0


def test_truncated_shard_is_never_trusted(olah, tmp_path, run_playbook):
    dest = tmp_path / "tiny-m2"
    play = snapshot_play(dest, olah["url"])
    result_of(run_playbook(play))
    shard = dest / "model-00001-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    assert "model-00001-of-00003.safetensors size" in failure_msg(run_playbook(verify_play(dest)))
    assert result_of(run_playbook(play))["changed"] is True
    assert digests(dest) == digests(olah["mirrors"] / "models" / REPO)


def descendants(pid: int) -> list:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ansible-playbook and every process under it: its module runs in a session of its own."""
    for victim in [pid, *descendants(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_download_killed_half_way_then_rerun_is_byte_identical(olah, tmp_path, ansible_env):
    dest = tmp_path / "models" / "big-m2"
    play = tmp_path / "big.yml"
    play.write_text(snapshot_play(dest, olah["url"], repo=BIG, extra={"max_workers": 1}))
    cmd = [
        "ansible-playbook",
        "-i",
        "localhost ansible_connection=local ansible_python_interpreter=%s," % sys.executable,
        str(play),
    ]
    proc = subprocess.Popen(
        cmd, env=ansible_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    staging = tmp_path / "models" / (".big-m2.staging-" + olah["commits"][BIG][:12])
    deadline = time.time() + 60
    partial = 0
    while time.time() < deadline and partial < 8 * 1024 * 1024:
        partial = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()) if staging.exists() else 0
        time.sleep(0.05)
    kill_tree(proc.pid)
    proc.wait()
    time.sleep(1)  # a survivor would publish now
    assert partial >= 8 * 1024 * 1024, "the download never got going"
    assert not dest.exists(), "a partial snapshot was published where the engine loads from"

    rerun = subprocess.run(cmd, env=ansible_env, capture_output=True, text=True, timeout=300)
    assert result_of(rerun)["changed"] is True
    assert digests(dest) == digests(olah["mirrors"] / "models" / BIG)
    assert leftovers(tmp_path / "models") == ["big-m2"]
    assert not list(dest.rglob("*.incomplete"))


def test_unknown_revision_is_a_clear_error(olah, tmp_path, run_playbook):
    proc = run_playbook(snapshot_play(tmp_path / "m", olah["url"], extra={"revision": "no-such-branch"}))
    assert failure_msg(proc) == (
        "revision 'no-such-branch' does not exist in %s: set preflight_revision (or weights_revision, which "
        "overrides it for the weights role alone) to a branch, tag or commit of that repository" % REPO
    )
    assert not (tmp_path / "m").exists()


def test_unreachable_mirror_is_a_clear_error_after_retries(tmp_path, run_playbook):
    proc = run_playbook(snapshot_play(tmp_path / "m", "http://127.0.0.1:%d" % DEAD_PORT))
    msg = failure_msg(proc)
    assert msg.startswith("cannot reach http://127.0.0.1:%d (ConnectError: " % DEAD_PORT)
    assert msg.endswith("check weights_endpoint (HF_ENDPOINT), the network and any proxy (gave up after 2 attempts)")
    assert not (tmp_path / "m").exists()


def test_disk_too_small_fails_before_the_first_byte(olah, tmp_path, run_playbook):
    proc = run_playbook(snapshot_play(tmp_path / "models" / "m", olah["url"], extra={"disk_reserve_bytes": 2**60}))
    msg = failure_msg(proc)
    assert msg.startswith("not enough disk space on %s: the download needs " % tmp_path)
    assert msg.endswith(
        "free space there or point fleetserve_models_dir (or this model's weights_dir) at a larger filesystem"
    )
    assert not (tmp_path / "models").exists()


class GatedHub(http.server.BaseHTTPRequestHandler):
    """Answers every request the way the hub answers a gated repo to a token it does not accept."""

    seen_auth: list = []

    def do_GET(self):  # noqa: N802 (http.server API)
        GatedHub.seen_auth.append(self.headers.get("Authorization"))
        body = b'{"error": "Access to model local-org/gated is restricted."}'
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model local-org/gated is restricted.")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture()
def gated_hub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port(range(18220, 18230))), GatedHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    GatedHub.seen_auth.clear()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def test_gated_repo_without_token(gated_hub, tmp_path, run_playbook):
    msg = failure_msg(run_playbook(snapshot_play(tmp_path / "m", gated_hub, repo="local-org/gated")))
    assert msg == (
        "access to local-org/gated@main on %s was refused (HTTP 401): the repository is gated or private; accept its "
        "terms on the hub and set fleetserve_hf_token (vault) or weights_hf_token_file to a token that may read it"
        % gated_hub
    )
    assert GatedHub.seen_auth and all(a is None for a in GatedHub.seen_auth)
    assert not (tmp_path / "m").exists()


def test_token_file_reaches_the_hub_but_never_the_log(gated_hub, tmp_path, run_playbook):
    token = "hf_fleetserveSECRETtoken0123456789"
    tok = tmp_path / "hf_token"
    tok.write_text(token + "\n")
    tok.chmod(0o600)
    proc = run_playbook(
        snapshot_play(tmp_path / "m", gated_hub, repo="local-org/gated", extra={"token_file": str(tok)}), "-vvv"
    )
    assert proc.returncode != 0 and "was refused (HTTP 401)" in proc.stdout  # -vvv spreads the failure over lines
    assert GatedHub.seen_auth[0] == "Bearer " + token
    assert token not in proc.stdout + proc.stderr

    tok.chmod(0o644)
    assert failure_msg(
        run_playbook(snapshot_play(tmp_path / "m", gated_hub, repo="local-org/gated", extra={"token_file": str(tok)}))
    ) == ("token file %s has mode 0644, readable by other users: run 'chmod 0600 %s'" % (tok, tok))
