# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model weights: manifests, integrity checks and hub error wording. Private: no API promise.

Everything here is deterministic and offline (files and dicts in, dicts out, ``ValueError`` with
the fix in the message); the hub client calls live in the ``hf_snapshot`` module.

A *manifest* is what the hub says a snapshot must contain, recorded at download time::

    {"repo_id": "MiniMaxAI/MiniMax-M2.5", "revision": "<40-hex commit>",
     "files": {"model-00001-of-00126.safetensors": {"size": 4, "sha256": "<hex>"|None,
                                                    "git_sha1": "<hex>"|None}}}

LFS files carry ``sha256`` (the LFS oid); small files carry ``git_sha1`` (the git blob id).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import struct

MARKER = ".fleetserve-weights.json"
HF_LOCAL_CACHE = ".cache"
CHUNK = 8 * 1024 * 1024
SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_RETRYABLE_STATUS = frozenset([408, 429, 500, 502, 503, 504])
_TRANSPORT_ERRORS = frozenset(
    [
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "ReadError",
        "RemoteProtocolError",
        "TimeoutException",
        "NetworkError",
        "ConnectionError",
        "Timeout",
        "WriteError",
        "PoolTimeout",
    ]
)


class WeightsError(ValueError):
    """A bad input or a failed check; the message names the fix."""


class HubError(WeightsError):
    """The hub (or mirror) refused or failed; ``retryable`` says whether trying again can help."""

    def __init__(self, msg, retryable=False, status=None, kind=None):
        super().__init__(msg)
        self.retryable = retryable
        self.status = status
        self.kind = kind


def validate_repo_id(repo_id):
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise WeightsError(
            "repo_id %r is not a hub repository id: set it to '<org>/<name>', e.g. 'MiniMaxAI/MiniMax-M2.5'"
            % (repo_id,)
        )
    return repo_id


def is_commit(revision):
    return isinstance(revision, str) and bool(_COMMIT.match(revision))


def select_files(paths, allow_patterns=None, ignore_patterns=None):
    """Filter repo paths like huggingface_hub does (fnmatch; a trailing '/' means the whole folder)."""

    def norm(patterns):
        return [p + "*" if p.endswith("/") else p for p in (patterns or [])]

    allow, ignore = norm(allow_patterns), norm(ignore_patterns)
    chosen = []
    for path in paths:
        if allow and not any(fnmatch.fnmatch(path, p) for p in allow):
            continue
        if any(fnmatch.fnmatch(path, p) for p in ignore):
            continue
        chosen.append(path)
    return sorted(chosen)


def build_manifest(repo_id, commit, entries, allow_patterns=None, ignore_patterns=None):
    """Manifest from hub tree entries: dicts with path, size, sha256 (LFS oid or None), git_sha1."""
    validate_repo_id(repo_id)
    if not is_commit(commit):
        raise WeightsError("the hub returned %r as the commit of %s; expected 40 hex digits" % (commit, repo_id))
    by_path = dict((e["path"], e) for e in entries)
    chosen = select_files(list(by_path), allow_patterns, ignore_patterns)
    if not chosen:
        raise WeightsError(
            "no file of %s@%s matches allow_patterns=%s ignore_patterns=%s: widen the patterns"
            % (repo_id, commit, list(allow_patterns or []), list(ignore_patterns or []))
        )
    files = {}
    for path in chosen:
        e = by_path[path]
        if e.get("size") is None:
            raise WeightsError("the hub gave no size for %s in %s@%s; cannot verify it" % (path, repo_id, commit))
        files[path] = {"size": int(e["size"]), "sha256": e.get("sha256"), "git_sha1": e.get("git_sha1")}
    return {"repo_id": repo_id, "revision": commit, "files": files}


def manifest_bytes(manifest):
    return sum(f["size"] for f in manifest["files"].values())


def check_disk(needed_bytes, free_bytes, path, reserve_bytes=0):
    """Fail before the first byte when the download cannot fit."""
    if needed_bytes + reserve_bytes > free_bytes:
        raise WeightsError(
            "not enough disk space on %s: the download needs %s (plus a reserve of %s) but %s is free; "
            "free space there or point fleetserve_models_dir (or this model's weights_dir) at a larger filesystem"
            % (path, human_bytes(needed_bytes), human_bytes(reserve_bytes), human_bytes(free_bytes))
        )


def human_bytes(n):
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % n  # pragma: no cover


def existing_ancestor(path):
    """The nearest existing directory at or above ``path`` (for free-space checks in check mode)."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def dir_bytes(path):
    """Bytes of the files below ``path`` (0 when it does not exist): weights present, or freed by a prune."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def check_token_file_mode(path, mode):
    """A token file readable by group or others leaks the secret: refuse it."""
    if mode & 0o077:
        raise WeightsError(
            "token file %s has mode %04o, readable by other users: run 'chmod 0600 %s'" % (path, mode & 0o7777, path)
        )


def read_token_file(path):
    try:
        st = os.stat(path)
    except OSError as exc:
        raise WeightsError(
            "cannot read token file %s (%s): set weights_hf_token_file (the module option token_file) to an "
            "existing 0600 file" % (path, exc.strerror)
        )
    check_token_file_mode(path, st.st_mode)
    with open(path) as fh:
        token = fh.read().strip()
    if not token:
        raise WeightsError("token file %s is empty: write the HuggingFace token into it" % path)
    return token


def describe_hub_error(kind, status, repo_id, revision, endpoint, detail=""):
    """Turn a hub client exception (class name + HTTP status) into a HubError naming the fix."""
    err = _describe_hub_error(kind, status, repo_id, revision, endpoint, detail)
    err.kind = kind
    return err


def _describe_hub_error(kind, status, repo_id, revision, endpoint, detail):
    where = "%s@%s on %s" % (repo_id, revision or "main", endpoint)
    if (
        kind == "GatedRepoError"
        or status in (401, 403)
        and kind not in ("RepositoryNotFoundError", "RevisionNotFoundError")
    ):
        return HubError(
            "access to %s was refused (HTTP %s): the repository is gated or private; accept its terms on the hub "
            "and set fleetserve_hf_token (vault) or weights_hf_token_file to a token that may read it"
            % (where, status),
            status=status,
        )
    if kind == "RevisionNotFoundError":
        return HubError(
            "revision %r does not exist in %s: set preflight_revision (or weights_revision, which overrides it for "
            "the weights role alone) to a branch, tag or commit of that repository" % (revision, repo_id),
            status=status,
        )
    if kind == "RepositoryNotFoundError":
        return HubError(
            "repository %s was not found on %s (HTTP %s): check weights_repo_id, and give a token if it is private"
            % (repo_id, endpoint, status),
            status=status,
        )
    if kind in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
        return HubError("a file listed for %s is missing on the server: %s" % (where, detail), status=status)
    if kind in _TRANSPORT_ERRORS:
        return HubError(
            "cannot reach %s (%s: %s): check weights_endpoint (HF_ENDPOINT), the network and any proxy"
            % (endpoint, kind, detail),
            retryable=True,
        )
    if status in _RETRYABLE_STATUS:
        return HubError(
            "%s answered HTTP %s for %s@%s: %s" % (endpoint, status, repo_id, revision or "main", detail),
            retryable=True,
            status=status,
        )
    return HubError("download of %s failed (%s, HTTP %s): %s" % (where, kind, status, detail), status=status)


def backoff_delays(retries, base, cap=60.0):
    """Sleep before each retry: base, 2*base, 4*base ... capped."""
    return [min(cap, base * (2**i)) for i in range(max(0, retries))]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1(path):
    h = hashlib.sha1()  # nosec: git's object id, not a security hash
    h.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def is_local_bookkeeping(relpath):
    """huggingface_hub's local_dir metadata (.cache/**: *.incomplete, *.lock, *.metadata) and our marker."""
    return relpath == MARKER or relpath.split("/", 1)[0] == HF_LOCAL_CACHE or relpath.endswith(".lock")


def list_files(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if not is_local_bookkeeping(rel):
                found.append(rel)
    return sorted(found)


def read_safetensors_header(path):
    """Parse a safetensors header; fail when it is malformed or the file is shorter than the tensors."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise WeightsError("%s is not a safetensors file (%d bytes): fetch it again" % (path, size))
        (n,) = struct.unpack("<Q", head)
        if n > SAFETENSORS_MAX_HEADER or 8 + n > size:
            raise WeightsError("%s has a bad safetensors header length (%d): fetch it again" % (path, n))
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WeightsError("%s has an unreadable safetensors header (%s): fetch it again" % (path, exc))
    if not isinstance(header, dict):
        raise WeightsError("%s has a safetensors header that is not an object: fetch it again" % path)
    tensors = dict((k, v) for k, v in header.items() if k != "__metadata__")
    end = 0
    for name, info in tensors.items():
        try:
            start, stop = info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise WeightsError("%s: tensor %s has no data_offsets: fetch the file again" % (path, name))
        end = max(end, stop)
    if 8 + n + end != size:
        raise WeightsError(
            "%s is %d bytes but its header describes %d: the file is truncated or padded; fetch it again"
            % (path, size, 8 + n + end)
        )
    return tensors


def check_safetensors_index(root, index_name="model.safetensors.index.json"):
    """Every shard named by the index exists, parses, and holds exactly the tensors mapped to it."""
    problems = []
    index_path = os.path.join(root, index_name)
    if not os.path.exists(index_path):
        return problems
    try:
        with open(index_path) as fh:
            weight_map = json.load(fh)["weight_map"]
    except (ValueError, KeyError, TypeError) as exc:
        return [{"path": index_name, "problem": "index", "detail": "unreadable index: %s" % exc}]
    expected = {}
    for tensor, shard in weight_map.items():
        expected.setdefault(shard, set()).add(tensor)
    for shard in sorted(expected):
        shard_path = os.path.join(root, shard)
        if not os.path.exists(shard_path):
            problems.append({"path": shard, "problem": "missing", "detail": "named by %s" % index_name})
            continue
        try:
            have = set(read_safetensors_header(shard_path))
        except WeightsError as exc:
            problems.append({"path": shard, "problem": "header", "detail": str(exc)})
            continue
        if have != expected[shard]:
            detail = "tensors not in the index: %s; in the index but absent: %s" % (
                sorted(have - expected[shard])[:5],
                sorted(expected[shard] - have)[:5],
            )
            problems.append({"path": shard, "problem": "tensors", "detail": detail})
    return problems


def file_signature(path):
    """What changes whenever a file's bytes may have: a rewrite, a rename over it, a touch."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def check_file(root, rel, want, full=True, known=None):
    """Problems of one file versus its manifest entry (size always, hashes when ``full``).

    ``known`` maps paths hashed earlier in this run to their ``file_signature`` then: such a file, still
    the same, is not hashed again.
    """
    path = os.path.join(root, rel)
    if not os.path.isfile(path):
        return {"path": rel, "problem": "missing", "detail": "expected %d bytes" % want["size"]}
    size = os.path.getsize(path)
    if size != want["size"]:
        return {"path": rel, "problem": "size", "detail": "%d bytes, the hub says %d" % (size, want["size"])}
    if not full or (known and known.get(rel) == file_signature(path)):
        return None
    if want.get("sha256"):
        got = sha256_file(path)
        if got != want["sha256"]:
            return {"path": rel, "problem": "sha256", "detail": "sha256 %s, the hub says %s" % (got, want["sha256"])}
    elif want.get("git_sha1"):
        got = git_blob_sha1(path)
        if got != want["git_sha1"]:
            return {
                "path": rel,
                "problem": "git_sha1",
                "detail": "blob id %s, the hub says %s" % (got, want["git_sha1"]),
            }
    return None


def verify_tree(root, manifest, full=True, known=None):
    """Check a local snapshot against its manifest and its safetensors index. Returns a report dict."""
    problems = []
    for rel in sorted(manifest["files"]):
        p = check_file(root, rel, manifest["files"][rel], full=full, known=known)
        if p:
            problems.append(p)
    extra = [rel for rel in list_files(root) if rel not in manifest["files"]]
    problems.extend({"path": rel, "problem": "unexpected", "detail": "not in the manifest"} for rel in extra)
    bad = set(p["path"] for p in problems)
    problems.extend(p for p in check_safetensors_index(root) if p["path"] not in bad)
    return {
        "ok": not problems,
        "problems": problems,
        "files": len(manifest["files"]),
        "bytes": manifest_bytes(manifest),
        "hashed": full,
    }


def read_marker(root):
    path = os.path.join(root, MARKER)
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def read_release_record(path):
    """A release record (the engine roles' current.json) as a dict; {} where there is none yet.

    A record that cannot be read or is not a JSON object raises: what the host serves must not be guessed.
    """
    try:
        with open(path) as fh:
            record = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WeightsError("cannot read the release record %s (%s): fix or remove the file" % (path, exc)) from None
    if not isinstance(record, dict):
        raise WeightsError("the release record %s is not a JSON object: fix or remove the file" % path)
    return record


def marker_content(manifest, allow_patterns, ignore_patterns, verified_at):
    return {
        "complete": True,
        "repo_id": manifest["repo_id"],
        "revision": manifest["revision"],
        "allow_patterns": list(allow_patterns or []),
        "ignore_patterns": list(ignore_patterns or []),
        "verified_at": verified_at,
        "files": manifest["files"],
    }


def marker_matches(marker, manifest):
    """The published snapshot claims to be exactly this manifest."""
    return bool(
        marker
        and marker.get("complete") is True
        and marker.get("repo_id") == manifest["repo_id"]
        and marker.get("revision") == manifest["revision"]
        and marker.get("files") == manifest["files"]
    )


def manifest_from_marker(marker):
    if not marker or marker.get("complete") is not True:
        raise WeightsError("no completion marker %s: the snapshot is incomplete; run the weights role again" % MARKER)
    return {"repo_id": marker["repo_id"], "revision": marker["revision"], "files": marker["files"]}


def staging_name(name, commit):
    return ".%s.staging-%s" % (name, commit[:12])


def staging_dir(dest, commit):
    """Sibling of ``dest`` (same filesystem, so publishing is one rename), one per commit."""
    dest = os.path.abspath(dest).rstrip("/")
    return os.path.join(os.path.dirname(dest), staging_name(os.path.basename(dest), commit))


def hf_metadata_path(root, rel):
    return os.path.join(root, HF_LOCAL_CACHE, "huggingface", "download", rel + ".metadata")


def fanout_rounds(holders, waiting, degree=1):
    """Copy schedule for a tree fan-out: every host that holds the copy feeds ``degree`` new hosts per round.

    ``holders`` already hold a verified copy (at first: the seed that read the origin); ``waiting`` need one.
    Returns a list of rounds, each ``{receiver: source}``. With degree 1 the holders double every round, so N
    hosts need ceil(log2 N) rounds while the origin is read once.
    """
    if not holders:
        raise WeightsError("no host holds a verified copy to fan out from: run the download on weights_seed_host first")
    if not isinstance(degree, int) or degree < 1:
        raise WeightsError("weights_fanout_degree is %r: set it to 1 or more" % (degree,))
    holders = list(holders)
    waiting = [h for h in waiting if h not in holders]
    rounds = []
    while waiting:
        this_round = {}
        for source in list(holders):
            for _slot in range(degree):
                if waiting:
                    this_round[waiting.pop(0)] = source
        holders.extend(this_round)
        rounds.append(this_round)
    return rounds


LFS_POINTER_MAX = 1024
_LFS_VERSION = "version https://git-lfs.github.com/spec/v1"


def parse_lfs_pointer(text):
    """(sha256, size) of a Git LFS pointer file, or None when ``text`` is an ordinary file."""
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != _LFS_VERSION:
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    oid, size = fields.get("oid", ""), fields.get("size", "")
    if not re.match(r"^sha256:[0-9a-f]{64}$", oid) or not size.isdigit():
        raise WeightsError("malformed Git LFS pointer (oid %r, size %r): the repository is damaged" % (oid, size))
    return oid.split(":", 1)[1], int(size)


def parse_ls_tree(output):
    """``git ls-tree -r -l -z`` output -> [(path, blob_sha1, size)] for blobs."""
    entries = []
    for record in output.split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        _mode, kind, sha1, size = meta.split()
        if kind == "blob":
            entries.append((path, sha1, int(size)))
    return entries


def lfs_object_path(git_dir, sha256):
    return os.path.join(git_dir, "lfs", "objects", sha256[0:2], sha256[2:4], sha256)
