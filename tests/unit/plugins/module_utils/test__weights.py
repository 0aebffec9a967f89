"""Pure weights logic: manifests, pattern selection, disk and token checks, hub error wording, verification."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w

pytestmark = pytest.mark.unit

COMMIT = "a" * 40


def write_safetensors(path, tensors, pad=0, truncate=0):
    """Minimal safetensors writer (header JSON + raw bytes) so the tests control every byte."""
    header, blob = {}, b""
    for name, data in tensors.items():
        header[name] = {"dtype": "U8", "shape": [len(data)], "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    raw = json.dumps(header).encode()
    body = struct.pack("<Q", len(raw)) + raw + blob + b"\0" * pad
    path.write_bytes(body[: len(body) - truncate] if truncate else body)


def entry(root, rel, lfs=True):
    data = (root / rel).read_bytes()
    if lfs:
        return {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "git_sha1": "0" * 40}
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return {"path": rel, "size": len(data), "sha256": None, "git_sha1": blob}


@pytest.fixture()
def repo(tmp_path):
    """A two-shard snapshot and its manifest."""
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": b"\1" * 16, "b": b"\2" * 8})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"c": b"\3" * 32})
    index = {
        "metadata": {},
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors",
            "c": "model-00002-of-00002.safetensors",
        },
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text('{"model_type": "minimax_m2"}')
    entries = [entry(tmp_path, r) for r in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")]
    entries += [entry(tmp_path, r, lfs=False) for r in ("model.safetensors.index.json", "config.json")]
    return tmp_path, w.build_manifest("org/model", COMMIT, entries)


@pytest.mark.parametrize("repo_id", ["MiniMaxAI/MiniMax-M2.5", "local-org/tiny_m2", "a/b.c"])
def test_validate_repo_id_accepts(repo_id):
    assert w.validate_repo_id(repo_id) == repo_id


@pytest.mark.parametrize("repo_id", ["MiniMax-M2.5", "a/b/c", "/a", "a/..", "", None, "a/b c"])
def test_validate_repo_id_rejects_with_the_fix(repo_id):
    with pytest.raises(ValueError) as exc:
        w.validate_repo_id(repo_id)
    assert str(exc.value) == (
        "repo_id %r is not a hub repository id: set it to '<org>/<name>', e.g. 'MiniMaxAI/MiniMax-M2.5'" % (repo_id,)
    )


@pytest.mark.parametrize(
    "allow, ignore, expected",
    [
        (None, None, ["README.md", "config.json", "model-1.safetensors", "original/x.pth"]),
        (["*.safetensors", "*.json"], None, ["config.json", "model-1.safetensors"]),
        (None, ["original/"], ["README.md", "config.json", "model-1.safetensors"]),
        (["*"], ["*.md", "*.pth"], ["config.json", "model-1.safetensors"]),
    ],
)
def test_select_files_follows_hub_pattern_semantics(allow, ignore, expected):
    paths = ["config.json", "README.md", "model-1.safetensors", "original/x.pth"]
    assert w.select_files(paths, allow, ignore) == expected


def test_build_manifest_fails_when_patterns_select_nothing():
    with pytest.raises(ValueError) as exc:
        w.build_manifest("org/m", COMMIT, [{"path": "a.bin", "size": 1}], ["*.safetensors"], [])
    assert str(exc.value) == (
        "no file of org/m@%s matches allow_patterns=['*.safetensors'] ignore_patterns=[]: widen the patterns" % COMMIT
    )


def test_build_manifest_rejects_a_branch_name_as_commit():
    with pytest.raises(ValueError, match="the hub returned 'main' as the commit of org/m; expected 40 hex digits"):
        w.build_manifest("org/m", "main", [{"path": "a", "size": 1}])


def test_check_disk_names_sizes_and_fix():
    w.check_disk(100, 200, "/srv", reserve_bytes=100)
    with pytest.raises(ValueError) as exc:
        w.check_disk(3 * 1024**3, 2 * 1024**3, "/srv", reserve_bytes=1024**3)
    assert str(exc.value) == (
        "not enough disk space on /srv: the download needs 3.0 GiB (plus a reserve of 1.0 GiB) but 2.0 GiB is free; "
        "free space there or point fleetserve_models_dir (or this model's weights_dir) at a larger filesystem"
    )


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_token_file_readable_by_others_is_refused(tmp_path, mode):
    f = tmp_path / "tok"
    f.write_text("hf_secret\n")
    os.chmod(f, mode)
    with pytest.raises(ValueError) as exc:
        w.read_token_file(str(f))
    assert str(exc.value) == "token file %s has mode %04o, readable by other users: run 'chmod 0600 %s'" % (f, mode, f)
    assert "hf_secret" not in str(exc.value)


def test_token_file_0600_is_read_and_stripped(tmp_path):
    f = tmp_path / "tok"
    f.write_text("hf_secret\n")
    os.chmod(f, 0o600)
    assert w.read_token_file(str(f)) == "hf_secret"


def test_missing_token_file_names_the_fix(tmp_path):
    with pytest.raises(
        ValueError, match=r"cannot read token file .*/nope \(No such file or directory\): set weights_hf_token_file"
    ):
        w.read_token_file(str(tmp_path / "nope"))


@pytest.mark.parametrize(
    "kind, status, message, retryable",
    [
        (
            "GatedRepoError",
            401,
            "access to o/m@main on http://h was refused (HTTP 401): the repository is gated or "
            "private; accept its terms on the hub and set fleetserve_hf_token (vault) or weights_hf_token_file to a "
            "token that may read it",
            False,
        ),
        ("HfHubHTTPError", 403, "access to o/m@main on http://h was refused (HTTP 403)", False),
        (
            "RevisionNotFoundError",
            404,
            "revision None does not exist in o/m: set preflight_revision (or weights_revision, which overrides it "
            "for the weights role alone) to a branch, tag or commit of that repository",
            False,
        ),
        (
            "RepositoryNotFoundError",
            401,
            "repository o/m was not found on http://h (HTTP 401): check weights_repo_id, "
            "and give a token if it is private",
            False,
        ),
        (
            "ConnectError",
            None,
            "cannot reach http://h (ConnectError: refused): check weights_endpoint (HF_ENDPOINT), "
            "the network and any proxy",
            True,
        ),
        ("HfHubHTTPError", 429, "http://h answered HTTP 429 for o/m@main: refused", True),
        ("HfHubHTTPError", 503, "http://h answered HTTP 503 for o/m@main: refused", True),
        ("HfHubHTTPError", 400, "download of o/m@main on http://h failed (HfHubHTTPError, HTTP 400): refused", False),
    ],
)
def test_describe_hub_error(kind, status, message, retryable):
    err = w.describe_hub_error(kind, status, "o/m", None, "http://h", "refused")
    assert str(err).startswith(message)
    assert err.retryable is retryable
    assert err.kind == kind


def test_backoff_doubles_and_caps():
    assert w.backoff_delays(5, 2.0, cap=10) == [2.0, 4.0, 8.0, 10, 10]
    assert w.backoff_delays(0, 2.0) == []


def test_verify_tree_passes_on_a_good_snapshot(repo):
    root, manifest = repo
    report = w.verify_tree(str(root), manifest)
    assert report == {"ok": True, "problems": [], "files": 4, "bytes": w.manifest_bytes(manifest), "hashed": True}


def test_verify_tree_ignores_hub_bookkeeping_and_marker(repo):
    root, manifest = repo
    dl = root / ".cache" / "huggingface" / "download"
    dl.mkdir(parents=True)
    (dl / "x.safetensors.abc0f3bc.incomplete").write_bytes(b"\0" * 10)
    (dl / "x.lock").write_text("")
    (root / "stale.lock").write_text("")
    (root / w.MARKER).write_text("{}")
    assert w.verify_tree(str(root), manifest)["ok"] is True


def test_a_file_hashed_earlier_in_the_run_is_trusted_only_while_it_is_unchanged(repo):
    root, manifest = repo
    shard = sorted(r for r in manifest["files"] if r.endswith(".safetensors"))[0]
    path = root / shard
    known = {shard: w.file_signature(str(path))}
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, same inode: only the mtime tells
    os.utime(path, ns=(known[shard][3], known[shard][3]))
    assert w.verify_tree(str(root), manifest, known=known)["ok"] is True  # the signature is all it checks
    os.utime(path, ns=(known[shard][3] + 1, known[shard][3] + 1))
    report = w.verify_tree(str(root), manifest, known=known)
    assert [(p["path"], p["problem"]) for p in report["problems"]] == [(shard, "sha256")]


def flip_byte(path, offset=-1):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_same_size_corruption_is_found_only_by_hashing(repo):
    root, manifest = repo
    flip_byte(root / "model-00002-of-00002.safetensors")
    assert w.verify_tree(str(root), manifest, full=False)["ok"] is True
    report = w.verify_tree(str(root), manifest, full=True)
    assert [(p["path"], p["problem"]) for p in report["problems"]] == [("model-00002-of-00002.safetensors", "sha256")]


def test_non_lfs_files_are_checked_by_git_blob_id(repo):
    root, manifest = repo
    (root / "config.json").write_text('{"model_type": "minimax_m3"}')
    problems = w.verify_tree(str(root), manifest)["problems"]
    assert [(p["path"], p["problem"]) for p in problems] == [("config.json", "git_sha1")]


def test_missing_truncated_and_unexpected_files(repo):
    root, manifest = repo
    (root / "model-00001-of-00002.safetensors").unlink()
    data = (root / "model-00002-of-00002.safetensors").read_bytes()
    (root / "model-00002-of-00002.safetensors").write_bytes(data[:-5])
    (root / "pytorch_model.bin").write_bytes(b"x")
    problems = w.verify_tree(str(root), manifest)["problems"]
    assert [(p["path"], p["problem"]) for p in problems] == [
        ("model-00001-of-00002.safetensors", "missing"),
        ("model-00002-of-00002.safetensors", "size"),
        ("pytorch_model.bin", "unexpected"),
    ]


def test_index_mismatch_is_reported_even_when_hub_metadata_agrees(tmp_path):
    """A repo whose own index disagrees with its shards (wrong upload) must not pass."""
    write_safetensors(tmp_path / "model-00001-of-00001.safetensors", {"a": b"\1", "zz": b"\2"})
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    entries = [entry(tmp_path, "model-00001-of-00001.safetensors"), entry(tmp_path, "model.safetensors.index.json")]
    report = w.verify_tree(str(tmp_path), w.build_manifest("o/m", COMMIT, entries))
    assert [(p["path"], p["problem"]) for p in report["problems"]] == [
        ("model-00001-of-00001.safetensors", "tensors"),
        ("model-00002-of-00002.safetensors", "missing"),
    ]
    assert report["problems"][0]["detail"] == "tensors not in the index: ['zz']; in the index but absent: []"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"truncate": 3}, "is %d bytes but its header describes %d: the file is truncated or padded; fetch it again"),
        ({"pad": 3}, "is %d bytes but its header describes %d: the file is truncated or padded; fetch it again"),
    ],
)
def test_safetensors_header_catches_truncation_and_padding(tmp_path, kwargs, message):
    f = tmp_path / "s.safetensors"
    write_safetensors(f, {"a": b"\1" * 10}, **kwargs)
    full = f.stat().st_size + kwargs.get("truncate", 0) - kwargs.get("pad", 0)
    with pytest.raises(ValueError) as exc:
        w.read_safetensors_header(str(f))
    assert str(exc.value) == "%s %s" % (f, message % (f.stat().st_size, full))


@pytest.mark.parametrize(
    "body, message",
    [
        (b"\1\2", "is not a safetensors file (2 bytes): fetch it again"),
        (struct.pack("<Q", 10**12) + b"{}", "has a bad safetensors header length (1000000000000): fetch it again"),
        (struct.pack("<Q", 4) + b"nope", "has an unreadable safetensors header"),
        (struct.pack("<Q", 2) + b"[]", "has a safetensors header that is not an object: fetch it again"),
    ],
)
def test_safetensors_header_rejects_garbage(tmp_path, body, message):
    f = tmp_path / "s.safetensors"
    f.write_bytes(body)
    with pytest.raises(
        ValueError, match="^%s %s" % (str(f).replace(".", r"\."), message.replace("(", r"\(").replace(")", r"\)"))
    ):
        w.read_safetensors_header(str(f))


def test_marker_must_match_commit_and_files(repo):
    _root, manifest = repo
    marker = w.marker_content(manifest, [], [], "2026-11-22T00:00:00Z")
    assert w.marker_matches(marker, manifest)
    assert not w.marker_matches(dict(marker, revision="b" * 40), manifest)
    assert not w.marker_matches(dict(marker, complete=False), manifest)
    assert not w.marker_matches(None, manifest)
    assert w.manifest_from_marker(marker) == manifest


def test_missing_marker_means_incomplete(tmp_path):
    with pytest.raises(ValueError) as exc:
        w.manifest_from_marker(w.read_marker(str(tmp_path)))
    assert str(exc.value) == (
        "no completion marker .fleetserve-weights.json: the snapshot is incomplete; run the weights role again"
    )


def test_staging_is_a_hidden_sibling_per_commit():
    assert w.staging_dir("/srv/models/MiniMax-M2.5/", COMMIT) == "/srv/models/.MiniMax-M2.5.staging-aaaaaaaaaaaa"


def test_existing_ancestor(tmp_path):
    assert w.existing_ancestor(str(tmp_path / "a" / "b")) == str(tmp_path)


@pytest.mark.parametrize(
    "n, degree, expected",
    [
        (1, 1, []),
        (2, 1, [{"h2": "h1"}]),
        (4, 1, [{"h2": "h1"}, {"h3": "h1", "h4": "h2"}]),
        (8, 1, [{"h2": "h1"}, {"h3": "h1", "h4": "h2"}, {"h5": "h1", "h6": "h2", "h7": "h3", "h8": "h4"}]),
        (5, 2, [{"h2": "h1", "h3": "h1"}, {"h4": "h1", "h5": "h1"}]),
    ],
)
def test_fanout_rounds_double_the_holders(n, degree, expected):
    hosts = ["h%d" % i for i in range(1, n + 1)]
    assert w.fanout_rounds(["h1"], hosts, degree) == expected


def test_fanout_every_host_receives_once_from_a_host_that_already_holds_it():
    hosts = ["h%d" % i for i in range(50)]
    holders = {"h7"}
    for rnd in w.fanout_rounds(["h7"], hosts):
        assert set(rnd.values()) <= holders and not set(rnd) & holders
        holders |= set(rnd)
    assert holders == set(hosts)


def test_fanout_hosts_already_holding_a_copy_serve_from_the_first_round():
    assert w.fanout_rounds(["h1", "h3"], ["h1", "h2", "h3", "h4", "h5"]) == [{"h2": "h1", "h4": "h3"}, {"h5": "h1"}]


@pytest.mark.parametrize(
    "holders, degree, message",
    [
        ([], 1, "no host holds a verified copy to fan out from: run the download on weights_seed_host first"),
        (["h1"], 0, "weights_fanout_degree is 0: set it to 1 or more"),
    ],
)
def test_fanout_rounds_rejects_bad_input(holders, degree, message):
    with pytest.raises(ValueError) as exc:
        w.fanout_rounds(holders, ["h1", "h2"], degree)
    assert str(exc.value) == message
