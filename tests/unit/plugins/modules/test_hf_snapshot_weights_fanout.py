"""hf_snapshot in the fan-out: announcements for waiting hosts, and the inline peer password, without a network.

rsync is replaced at AnsibleModule.run_command: it "copies" FILES into the staging directory and records
what it was asked, including the password file's mode while rsync would read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.modules import hf_snapshot

pytestmark = pytest.mark.unit

COMMIT = "d" * 40
FILES = {"config.json": b'{"model_type": "minimax_m2"}', "model-00001-of-00001.safetensors": b"\1" * 64}
MANIFEST = {
    "repo_id": "org/model",
    "revision": COMMIT,
    "files": {k: {"size": len(v), "sha256": hashlib.sha256(v).hexdigest(), "git_sha1": None} for k, v in FILES.items()},
}
PEER = "rsync://fleetserve@h1:8873/weights/model/"


class FakeRsync:
    calls: list = []
    password_modes: list = []
    rc = 0

    @staticmethod
    def run_command(module, argv, **_kw):
        cls = FakeRsync
        cls.calls.append(list(argv))
        for arg in argv:
            if arg.startswith("--password-file="):
                path = arg.split("=", 1)[1]
                cls.password_modes.append(
                    (stat.S_IMODE(os.stat(path).st_mode), stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode))
                )
        if cls.rc:
            return cls.rc, "", "rsync: failed to connect to h1: Connection refused (111)"
        staging = argv[-1]
        for rel, data in FILES.items():
            with open(os.path.join(staging, rel), "wb") as fh:
                fh.write(data)
        return 0, "", ""


@pytest.fixture(autouse=True)
def fake_rsync(monkeypatch):
    FakeRsync.calls, FakeRsync.password_modes, FakeRsync.rc = [], [], 0
    monkeypatch.setattr(AnsibleModule, "run_command", FakeRsync.run_command)
    monkeypatch.setattr(
        AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name
    )


def run_module(capsys, check_mode=False, **args):
    args = dict({"repo_id": "org/model", "manifest": MANIFEST, "peer_url": PEER}, **args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        hf_snapshot.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = exc.value.code
    return out


def test_copy_publishes_then_announces_ready_for_this_run(tmp_path, capsys):
    ready = tmp_path / "run" / "model.json"
    out = run_module(capsys, dest=str(tmp_path / "model"), fanout_run="r1", ready_file=str(ready))
    assert (out["rc"], out["changed"], out["revision"]) == (0, True, COMMIT)
    assert (tmp_path / "model" / w.MARKER).exists()
    assert json.loads(ready.read_text()) == {"run": "r1", "state": "ready", "message": ""}
    assert stat.S_IMODE(ready.stat().st_mode) == 0o644  # the peer server reads it as nobody
    assert not (tmp_path / "run" / "model.json.tmp").exists()


def test_a_copy_already_verified_is_announced_without_copying(tmp_path, capsys):
    run_module(capsys, dest=str(tmp_path / "model"))
    FakeRsync.calls = []
    ready = tmp_path / "model.json"
    out = run_module(capsys, dest=str(tmp_path / "model"), fanout_run="r2", ready_file=str(ready))
    assert (out["rc"], out["changed"], FakeRsync.calls) == (0, False, [])
    assert json.loads(ready.read_text())["run"] == "r2"


def test_a_failed_copy_is_announced_with_its_reason_and_nothing_is_published(tmp_path, capsys):
    FakeRsync.rc = 10
    ready = tmp_path / "model.json"
    out = run_module(capsys, dest=str(tmp_path / "model"), fanout_run="r1", ready_file=str(ready))
    assert out["rc"] == 1
    assert out["msg"] == (
        "copying from peer %s failed (rsync rc 10: rsync: failed to connect to h1: Connection refused (111)): "
        "check that the peer's rsync daemon runs and that this host can reach it" % PEER
    )
    assert json.loads(ready.read_text()) == {"run": "r1", "state": "failed", "message": out["msg"]}
    assert not (tmp_path / "model").exists()


def test_check_mode_neither_copies_nor_announces(tmp_path, capsys):
    ready = tmp_path / "model.json"
    out = run_module(
        capsys,
        check_mode=True,
        dest=str(tmp_path / "model"),
        fanout_run="r1",
        ready_file=str(ready),
        peer_password="s3cret",
        peer_wait={"h0": "rsync://fleetserve@h0:8873/ready/model.json"},
    )
    assert (out["rc"], out["changed"], FakeRsync.calls) == (0, True, [])
    assert not ready.exists() and not (tmp_path / "model").exists()


def test_the_inline_password_reaches_rsync_only_through_a_private_0600_file(tmp_path, capsys):
    out = run_module(capsys, dest=str(tmp_path / "model"), peer_password="s3cret")
    assert out["rc"] == 0
    assert "s3cret" not in json.dumps(FakeRsync.calls) and "s3cret" not in json.dumps(out)
    assert FakeRsync.password_modes == [(0o600, 0o700)]
    password_file = [a for a in FakeRsync.calls[0] if a.startswith("--password-file=")][0].split("=", 1)[1]
    assert not os.path.exists(os.path.dirname(password_file))  # removed when the module exits


def test_peer_wait_needs_a_run_id(tmp_path, capsys):
    out = run_module(capsys, dest=str(tmp_path / "model"), peer_wait={"h0": "rsync://x@h0:8873/ready/model.json"})
    assert out["rc"] == 1
    assert out["msg"] == "peer_wait needs fanout_run, the identifier the waited-for hosts announce their copy under"


def test_the_copy_waits_for_its_source_before_rsync_runs(tmp_path, capsys, monkeypatch):
    waited = []
    monkeypatch.setattr(
        hf_snapshot.Peer,
        "wait",
        lambda self, timeout: waited.append((sorted(self.module.params["peer_wait"]), len(FakeRsync.calls))),
    )
    out = run_module(
        capsys,
        dest=str(tmp_path / "model"),
        fanout_run="r1",
        peer_wait={"h2": "rsync://fleetserve@h2:8873/ready/model.json"},
    )
    assert out["rc"] == 0
    assert waited == [(["h2"], 0)]  # before the first rsync
