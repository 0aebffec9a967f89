#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hf_snapshot
short_description: Download a pinned, verified snapshot of a HuggingFace hub repository
version_added: "0.1.0"
description:
  - Resolves O(revision) (a branch, tag or commit) to a commit, lists the files the hub holds at that commit
    with their sizes and hashes (the I(manifest)), and downloads them with C(huggingface_hub.snapshot_download).
  - The download goes into a staging directory beside O(dest) (same filesystem). Every file is checked against
    the manifest (size, sha256 of LFS files, git blob id of the others) and the safetensors index; files that fail
    are fetched again once. Only then a completion marker C(.fleetserve-weights.json) is written, last, and the
    staging directory is renamed to O(dest), so O(dest) never holds a partial snapshot.
  - A rerun after an interruption reuses the files already complete in staging. A rerun after success downloads
    nothing and reports no change.
  - Free disk space is checked before the first byte is written.
  - Retries with exponential backoff on HTTP 408, 429 and 5xx and on network errors; authentication, missing
    repositories and unknown revisions fail at once with a message naming the fix.
  - The token is never logged, never put in the environment of other processes, and never written to disk.
requirements:
  - huggingface_hub >= 1.0 on the target (the C(weights) role installs it into its own venv)
author:
  - fleetserve maintainers (@fleetserve)
options:
  repo_id:
    description: Hub repository id, C(<org>/<name>).
    type: str
    required: true
  revision:
    description:
      - Branch, tag or 40-hex commit. A branch or tag is resolved to its commit once, and the commit is recorded
        in the marker and returned; pin the commit for reproducible fleets.
    type: str
    default: main
  dest:
    description: Absolute directory the engine loads the weights from. Its parent is created when missing.
    type: path
    required: true
  endpoint:
    description:
      - Hub or mirror base URL (what C(HF_ENDPOINT) sets), for example an olah or hf-mirror instance.
      - Defaults to the C(HF_ENDPOINT) environment variable of the target, else C(https://huggingface.co).
    type: str
  token:
    description: HuggingFace token (from a vault). Mutually exclusive with O(token_file).
    type: str
  token_file:
    description: Path on the target of a file holding the token; it must not be readable by group or others.
    type: path
  allow_patterns:
    description: Only files matching one of these glob patterns are downloaded (C(huggingface_hub) semantics).
    type: list
    elements: str
    default: []
  ignore_patterns:
    description: Files matching one of these glob patterns are skipped.
    type: list
    elements: str
    default: []
  max_workers:
    description: Parallel file downloads. Range 1 to 256.
    type: int
    default: 8
  high_performance:
    description:
      - Sets C(HF_XET_HIGH_PERFORMANCE=1) for this download, letting the Xet transfer use all cores and more
        bandwidth (huggingface_hub's successor to C(hf_transfer)).
    type: bool
    default: false
  retries:
    description: Extra attempts after a retryable failure (429, 5xx, network). Range 0 to 100.
    type: int
    default: 5
  retry_delay:
    description: Seconds before the first retry; doubled for each further one, capped at 60. Range 0.0 to 60.0.
    type: float
    default: 2.0
  disk_reserve_bytes:
    description: Bytes that must stay free on the filesystem of O(dest) after the download.
      Range 0 to 4611686018427387904.
    type: int
    default: 1073741824
  verify:
    description:
      - How an already published snapshot is checked before it is declared up to date. C(full) hashes every file,
        C(size) checks presence, sizes and safetensors headers only. Fresh downloads are always hashed.
    type: str
    choices: [full, size]
    default: full
  method:
    description:
      - C(api) downloads with C(huggingface_hub.snapshot_download).
      - C(git) is guide A's C(git clone) without two copies on disk - a pointer-only clone (C(GIT_LFS_SKIP_SMUDGE=1))
        gives the file list and LFS oids, C(git lfs fetch) brings the objects, each object is hard-linked onto
        its path and the clone is deleted. Needs C(git) and C(git-lfs) on the target (role C(git_lfs)). The same
        verification and publishing apply. O(endpoint) is then the git base URL (C(https://huggingface.co), a
        mirror, or C(file://) for a local mirror).
    type: str
    choices: [api, git]
    default: api
  peer_url:
    description:
      - Copy from another host of the fleet instead of the hub, for example
        C(rsync://fleetserve@10.0.0.5:8873/weights/MiniMax-M2.5/) (a read-only rsync daemon module).
      - The copy is staged, verified against O(manifest) and published exactly like a hub download.
    type: str
  peer_password_file:
    description: File holding the rsync daemon password of O(peer_url); it must not be readable by group or others.
    type: path
  peer_password:
    description:
      - The rsync daemon password of O(peer_url), for example a one-off password of this fan-out from a vault or a
        C(no_log) fact. It is handed to rsync through a 0600 file in a private directory removed when the module
        exits, never through argv or the environment. Mutually exclusive with O(peer_password_file).
    type: str
  peer_wait:
    description:
      - Hosts whose verified copy this copy waits for, each mapped to the C(rsync://) URL of the file it announces
        through its peer server. The copy starts once every one of them announces C(ready) for O(fanout_run); a
        C(failed) announcement, a peer server unreachable for 120 s, or O(peer_timeout) fail the module with a
        message naming the host.
      - Only used when a copy is needed; a host whose copy already matches O(manifest) does not wait.
    type: dict
    default: {}
  fanout_run:
    description:
      - Identifier of this fan-out run; announcements of other runs are ignored. Required with O(peer_wait) or
        O(ready_file).
    type: str
  ready_file:
    description:
      - Where this host announces, for O(fanout_run), that its copy is verified and published (or that it failed,
        with the reason), for hosts that wait for it. Written last, atomically; readable by all (it holds no secret).
    type: path
  peer_stream:
    description:
      - Start copying before the source announces its copy. Each file is taken from the source's staging area
        as soon as it lands there, hashed against O(manifest) at once, and not hashed again at the end. Copies
        along a chain of hosts then run while the seed still downloads instead of after it.
      - Only when the source is one of O(peer_wait) (a host that fetches or copies in this run). A file that
        fails its hash is left for the copy made after the source's announcement. When every file has been
        streamed in and hashed right, the copy is complete without waiting for O(peer_wait) at all.
    type: bool
    default: false
  peer_timeout:
    description: Seconds to wait for the hosts of O(peer_wait) before failing, streaming (O(peer_stream)) included.
      Range 1 to 604800.
    type: int
    default: 14400
  manifest:
    description:
      - The RV(manifest) returned by this module on the host that read the hub. Required with O(peer_url); the
        revision is taken from it.
    type: dict
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: >-
      Resolves the revision, reads the hub's file list (or takes O(manifest)) and checks disk space; writes nothing,
      waits for no peer and announces nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
    details: A published snapshot that matches the manifest is left alone and reports no change.
notes:
  - The revision and file list are read from the hub even when O(dest) is complete, so the hub must be reachable.
    Hosts that must not contact the hub verify with M(fleetserve.minimax.model_weights_info) instead.
seealso:
  - module: fleetserve.minimax.model_weights_info
"""

EXAMPLES = r"""
- name: Weights | Download MiniMax-M2.5 at a pinned commit through a mirror
  fleetserve.minimax.hf_snapshot:
    repo_id: MiniMaxAI/MiniMax-M2.5
    revision: 0123456789abcdef0123456789abcdef01234567
    dest: /srv/models/MiniMax-M2.5
    endpoint: https://hf-mirror.example.internal
    token_file: /etc/fleetserve/hf_token
    ignore_patterns: ["*.pth", "original/*"]
  vars:
    ansible_python_interpreter: /opt/fleetserve/hf-venv/bin/python
"""

RETURN = r"""
path:
  description: The published snapshot directory.
  returned: always
  type: str
  sample: /srv/models/MiniMax-M2.5
repo_id:
  description: The repository.
  returned: always
  type: str
revision:
  description: The commit the snapshot is pinned to.
  returned: always
  type: str
  sample: 0123456789abcdef0123456789abcdef01234567
requested_revision:
  description: O(revision) as given (branch, tag or commit).
  returned: always
  type: str
files:
  description: Number of files in the snapshot.
  returned: always
  type: int
bytes:
  description: Total bytes of the snapshot.
  returned: always
  type: int
download_bytes:
  description: Bytes that had to be (or, in check mode, would be) fetched from the hub.
  returned: always
  type: int
streamed:
  description: Files copied from a peer while it was still fetching them itself (O(peer_stream)).
  returned: when something was downloaded or copied
  type: int
refetched:
  description: Files that failed verification after the download and were fetched again.
  returned: always
  type: list
  elements: str
manifest:
  description: What the hub says the snapshot holds; pass it to M(fleetserve.minimax.model_weights_info) on other hosts.
  returned: always
  type: dict
"""

import json
import os
import shutil
import time


from ansible_collections.fleetserve.minimax.plugins.module_utils import _secrets
from ansible_collections.fleetserve.minimax.plugins.module_utils._bounds import BoundedModule
from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.module_utils._weights_fanout import ready_document
from ansible_collections.fleetserve.minimax.plugins.module_utils._weights_sources import Git, Hub, Peer

DEFAULT_ENDPOINT = "https://huggingface.co"


def _discard(root, rel):
    for path in (os.path.join(root, rel), w.hf_metadata_path(root, rel)):
        if os.path.lexists(path):
            os.unlink(path)


def _prepare_staging(staging, dest, manifest):
    """Reuse what is already good (size-checked; everything is hashed after the download) without copying bytes."""
    os.makedirs(staging, exist_ok=True)
    for dirpath, _dirs, files in os.walk(os.path.join(staging, w.HF_LOCAL_CACHE)):
        for name in files:
            if name.endswith(".incomplete") or name.endswith(".lock"):
                os.unlink(os.path.join(dirpath, name))  # hub 2.x never resumes these; they only eat disk
    for rel in w.list_files(staging):
        if rel not in manifest["files"] or w.check_file(staging, rel, manifest["files"][rel], full=False):
            _discard(staging, rel)
    for rel, want in manifest["files"].items():
        if os.path.exists(os.path.join(staging, rel)) or w.check_file(dest, rel, want, full=False):
            continue
        for src, dst in (
            (os.path.join(dest, rel), os.path.join(staging, rel)),
            (w.hf_metadata_path(dest, rel), w.hf_metadata_path(staging, rel)),
        ):
            if os.path.exists(src):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.link(src, dst)


def _missing_bytes(roots, manifest):
    need = 0
    for rel, want in manifest["files"].items():
        if all(w.check_file(r, rel, want, full=False) for r in roots):
            need += want["size"]
    return need


def _publish(staging, dest, marker):
    tmp = os.path.join(staging, w.MARKER + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(marker, indent=1, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, os.path.join(staging, w.MARKER))
    old = None
    if os.path.lexists(dest):
        old = dest + ".fleetserve-old"
        if os.path.lexists(old):
            shutil.rmtree(old)
        os.rename(dest, old)
    os.rename(staging, dest)
    if old:
        shutil.rmtree(old)


def _announce(path, document):
    """Atomic, so a waiting host never reads half a file; 0644, the peer server reads it as nobody."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(document))
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


_SCRATCH = []  # directories removed however the module exits


def run(module):
    p = module.params
    w.validate_repo_id(p["repo_id"])
    dest = os.path.abspath(p["dest"]).rstrip("/")
    token = p["token"] or (w.read_token_file(p["token_file"]) if p["token_file"] else False)
    # One rule for every secret (_secrets.check_secret): refused before anything is fetched, never echoed.
    _secrets.check_secret("the HF token (fleetserve_hf_token or weights_hf_token_file)", token or "")
    _secrets.check_secret("the rsync password (peer_password)", p["peer_password"] or "")
    endpoint = (p["endpoint"] or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    if p["peer_wait"] and not p["fanout_run"]:
        raise ValueError("peer_wait needs fanout_run, the identifier the waited-for hosts announce their copy under")
    if p["peer_url"]:
        hub = Peer(module, _SCRATCH)
    elif p["method"] == "git":
        hub = Git(module, endpoint, token, dest, _SCRATCH)
    else:
        hub = Hub(module, endpoint, token)
    commit, entries = hub.resolve(p["revision"])
    manifest = w.build_manifest(p["repo_id"], commit, entries, p["allow_patterns"], p["ignore_patterns"])
    result = dict(
        path=dest,
        repo_id=p["repo_id"],
        revision=commit,
        requested_revision=p["revision"],
        files=len(manifest["files"]),
        bytes=w.manifest_bytes(manifest),
        download_bytes=0,
        refetched=[],
        manifest=manifest,
        changed=False,
    )
    if w.marker_matches(w.read_marker(dest), manifest) and w.verify_tree(dest, manifest, p["verify"] == "full")["ok"]:
        if p["ready_file"] and not module.check_mode:
            _announce(p["ready_file"], ready_document(p["fanout_run"], True))
        return result
    staging = w.staging_dir(dest, commit)
    result.update(changed=True, download_bytes=_missing_bytes([dest, staging], manifest))
    free_at = w.existing_ancestor(os.path.dirname(dest))
    w.check_disk(result["download_bytes"], shutil.disk_usage(free_at).free, free_at, p["disk_reserve_bytes"])
    if module.check_mode:
        return result
    _prepare_staging(staging, dest, manifest)
    hub.download(commit, staging, p)
    # A peer's copy hashed file by file while it streamed in is not hashed again.
    report = w.verify_tree(staging, manifest, full=True, known=getattr(hub, "verified", None))
    if not report["ok"]:
        result["refetched"] = sorted(set(x["path"] for x in report["problems"]))
        for rel in result["refetched"]:
            _discard(staging, rel)
        hub.download(commit, staging, p)
        report = w.verify_tree(staging, manifest, full=True)
        if not report["ok"]:
            raise w.WeightsError(
                "the download of %s@%s still fails verification after a second fetch: %s; "
                "check the mirror's copy" % (p["repo_id"], commit, report["problems"][:5])
            )
    result["streamed"] = getattr(hub, "streamed", 0)
    _publish(
        staging,
        dest,
        w.marker_content(
            manifest, p["allow_patterns"], p["ignore_patterns"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ),
    )
    if p["ready_file"]:
        _announce(p["ready_file"], ready_document(p["fanout_run"], True))
    return result


# The ranges DOCUMENTATION states (Range LOW to HIGH.), checked before anything is read or written.
BOUNDS = dict(
    max_workers=(1, 256),
    retries=(0, 100),
    retry_delay=(0.0, 60.0),
    disk_reserve_bytes=(0, 4611686018427387904),
    peer_timeout=(1, 604800),
)


def main():
    module = BoundedModule(
        BOUNDS,
        argument_spec=dict(
            repo_id=dict(type="str", required=True),
            revision=dict(type="str", default="main"),
            dest=dict(type="path", required=True),
            endpoint=dict(type="str"),
            token=dict(type="str", no_log=True),
            token_file=dict(type="path"),
            allow_patterns=dict(type="list", elements="str", default=[]),
            ignore_patterns=dict(type="list", elements="str", default=[]),
            max_workers=dict(type="int", default=8),
            high_performance=dict(type="bool", default=False),
            retries=dict(type="int", default=5),
            retry_delay=dict(type="float", default=2.0),
            disk_reserve_bytes=dict(type="int", default=1073741824),
            verify=dict(type="str", choices=["full", "size"], default="full"),
            method=dict(type="str", choices=["api", "git"], default="api"),
            peer_url=dict(type="str"),
            peer_password_file=dict(type="path", no_log=False),
            peer_password=dict(type="str", no_log=True),
            peer_wait=dict(type="dict", default={}),
            fanout_run=dict(type="str"),
            ready_file=dict(type="path"),
            peer_stream=dict(type="bool", default=False),
            peer_timeout=dict(type="int", default=14400),
            manifest=dict(type="dict"),
        ),
        mutually_exclusive=[("token", "token_file"), ("peer_url", "endpoint"), ("peer_password", "peer_password_file")],
        required_by={"peer_url": ("manifest",), "ready_file": ("fanout_run",)},
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (ValueError, OSError) as exc:
        if module.params["ready_file"] and not module.check_mode:
            # Hosts waiting for this one fail at once with this reason instead of waiting for their timeout.
            try:
                _announce(module.params["ready_file"], ready_document(module.params["fanout_run"], False, str(exc)))
            except OSError:
                pass  # the waiting hosts then fail on their timeout; this host's own error matters more
        module.fail_json(msg=str(exc), repo_id=module.params["repo_id"], dest=module.params["dest"])
    finally:
        for path in _SCRATCH:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
