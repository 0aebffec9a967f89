"""hf_snapshot with peer_stream: files taken from a source still filling its staging area, each hashed once.

rsync is replaced at AnsibleModule.run_command by a source whose staging area gains one file each time its
ready file is polled, and which announces once it holds everything. Files keep the source's mtime, as
`rsync -a` does, so the final copy's quick check sees the streamed ones as done.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.modules import hf_snapshot

pytestmark = pytest.mark.unit

COMMIT = "e" * 40
FILES = {
    "config.json": b'{"model_type": "minimax_m2"}',
    "model-00001-of-00002.safetensors": b"\1" * 64,
    "model-00002-of-00002.safetensors": b"\2" * 64,
}
MANIFEST = {
    "repo_id": "org/model",
    "revision": COMMIT,
    "files": {k: {"size": len(v), "sha256": hashlib.sha256(v).hexdigest(), "git_sha1": None} for k, v in FILES.items()},
}
SOURCE = "rsync://fleetserve@h2:8873/"
MTIME = 1_700_000_000


class FillingSource:
    def __init__(self, corrupt=()):
        self.order, self.landed, self.corrupt = sorted(FILES), [], set(corrupt)
        self.polls, self.pulls, self.final_writes, self.final_copies = 0, [], [], 0

    def _write(self, staging, rel, data):
        path = os.path.join(staging, rel)
        with open(path + ".tmp", "wb") as fh:
            fh.write(data)
        os.utime(path + ".tmp", (MTIME, MTIME))
        os.rename(path + ".tmp", path)

    def run_command(self, argv):
        target = argv[-1]
        if target.endswith("/ready.json"):
            assert argv[-2] == SOURCE + "ready/model.json"
            self.polls += 1
            if len(self.landed) == len(self.order):
                with open(target, "w") as fh:
                    fh.write(json.dumps({"run": "r1", "state": "ready", "message": ""}))
                return 0, "", ""
            self.landed.append(self.order[len(self.landed)])
            return 23, "", "rsync: link_stat failed: No such file or directory (2)"
        listed = [a.split("=", 1)[1] for a in argv if a.startswith("--files-from=")]
        if listed:
            assert argv[-2] == SOURCE + "weights/.model.staging-%s/" % COMMIT[:12]
            with open(listed[0]) as fh:
                wanted = fh.read().split()
            self.pulls.append(wanted)
            for rel in wanted:
                if rel in self.landed:
                    bad = rel in self.corrupt
                    self.corrupt.discard(rel)  # the source re-fetches it before it announces
                    self._write(target, rel, b"\0" * len(FILES[rel]) if bad else FILES[rel])
            return (0 if set(wanted) <= set(self.landed) else 23), "", ""
        assert argv[-2] == SOURCE + "weights/model/"
        self.final_copies += 1
        for rel, data in FILES.items():
            path = os.path.join(target, rel)
            st = os.stat(path) if os.path.exists(path) else None
            if not st or (st.st_size, int(st.st_mtime)) != (len(data), MTIME):
                self.final_writes.append(rel)
                self._write(target, rel, data)
        return 0, "", ""


@pytest.fixture
def source(monkeypatch):
    src = FillingSource()
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, **kw: src.run_command(argv))
    monkeypatch.setattr(
        AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name
    )
    hashed = []
    real = w.sha256_file
    monkeypatch.setattr(w, "sha256_file", lambda path: hashed.append(os.path.basename(path)) or real(path))
    src.hashed = hashed
    return src


def run_module(capsys, tmp_path, **args):
    args = dict(
        {
            "repo_id": "org/model",
            "manifest": MANIFEST,
            "peer_url": SOURCE + "weights/model/",
            "dest": str(tmp_path / "model"),
            "fanout_run": "r1",
            "peer_wait": {"h2": SOURCE + "ready/model.json"},
            "peer_stream": True,
        },
        **args,
    )
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        hf_snapshot.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = exc.value.code
    return out


def test_every_file_is_copied_as_it_lands_at_the_source_and_hashed_once(source, tmp_path, capsys):
    out = run_module(capsys, tmp_path)
    assert (out["rc"], out["changed"], out["streamed"]) == (0, True, 3)
    assert source.pulls[0] == sorted(FILES)  # the first pass asks for everything
    # Every file came in and hashed right while the source was still filling: no wait for its announcement,
    # no copy after it.
    assert (source.polls, source.final_copies) == (3, 0)
    assert sorted(source.hashed) == sorted(FILES)  # each file hashed once, while it streamed in
    assert w.verify_tree(str(tmp_path / "model"), MANIFEST)["ok"]
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # staging published whole


def test_a_streamed_file_failing_its_hash_is_taken_again_after_the_announcement(source, tmp_path, capsys):
    source.corrupt = {"model-00001-of-00002.safetensors"}
    out = run_module(capsys, tmp_path)
    assert (out["rc"], out["streamed"]) == (0, 2)
    assert (source.final_copies, source.final_writes) == (1, ["model-00001-of-00002.safetensors"])
    assert all("model-00001-of-00002.safetensors" not in p for p in source.pulls[2:])
    assert w.verify_tree(str(tmp_path / "model"), MANIFEST)["ok"]


def test_without_its_source_in_peer_wait_nothing_streams(source, tmp_path, capsys, monkeypatch):
    # h2 held its copy before this run (it announces nothing): the copy waits for h3 only, then takes all.
    monkeypatch.setattr(hf_snapshot.Peer, "wait", lambda self, timeout: None)
    out = run_module(capsys, tmp_path, peer_wait={"h3": "rsync://fleetserve@h3:8873/ready/model.json"})
    assert (out["rc"], out["streamed"], source.polls, source.pulls) == (0, 0, 0, [])
    assert sorted(source.final_writes) == sorted(FILES)


def test_peer_timeout_bounds_streaming_and_the_wait_after_it_together(source, tmp_path, capsys, monkeypatch):
    # A source that never lands a file nor announces: streaming gives up at peer_timeout, and the wait that
    # follows gets what is left of it (at least a second), not a second peer_timeout.
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights_sources as sources

    class FakeTime:
        now = 1000.0

        def monotonic(self):
            return self.now

        def sleep(self, seconds):
            self.now += seconds

    clock = FakeTime()
    monkeypatch.setattr(sources, "time", clock)
    source.landed = None  # never lands anything
    monkeypatch.setattr(
        AnsibleModule,
        "run_command",
        lambda self, argv, **kw: (23, "", "rsync: link_stat failed: No such file or directory (2)"),
    )
    out = run_module(capsys, tmp_path, peer_timeout=30)
    assert out["rc"] == 1 and out["failed"]
    assert "h2" in out["msg"]
    assert 30 <= clock.now - 1000.0 <= 37  # one budget of 30 s (the wait's last poll may overshoot a little)
    assert not (tmp_path / "model").exists()
