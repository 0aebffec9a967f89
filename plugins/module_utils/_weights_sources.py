# Copyright: (c) 2026, fleetserve contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where hf_snapshot reads a snapshot from: the hub API, a git (LFS) remote, or a peer host. Private.

Each source has ``resolve(revision) -> (commit, entries)`` (entries feed ``_weights.build_manifest``) and
``download(commit, staging, params)`` (fills staging; verification and publishing are the caller's).
Failures are ``_weights.HubError`` / ``WeightsError`` with the fix in the message.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights_fanout as fanout


class Hub:
    """The few huggingface_hub calls we make, each mapped to a HubError and retried when that can help."""

    def __init__(self, module, endpoint, token):
        p = module.params
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
        if p["high_performance"]:
            os.environ["HF_XET_HIGH_PERFORMANCE"] = "1"
        try:  # imported late: huggingface_hub reads the variables above at import time
            import huggingface_hub
        except ImportError:
            module.fail_json(msg=missing_required_lib("huggingface_hub"))
        self.hf = huggingface_hub
        self.api = huggingface_hub.HfApi(endpoint=endpoint, token=token)
        self.endpoint, self.token = endpoint, token
        self.repo_id, self.retries, self.delay = p["repo_id"], p["retries"], p["retry_delay"]

    def _error(self, exc, revision):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        detail = (str(exc).splitlines() or [""])[0][:300]
        return w.describe_hub_error(type(exc).__name__, status, self.repo_id, revision, self.endpoint, detail)

    def call(self, revision, fn):
        delays = w.backoff_delays(self.retries, self.delay)
        for attempt in range(len(delays) + 1):
            try:
                return fn()
            except Exception as exc:  # pylint: disable=broad-except
                err = self._error(exc, revision)
                if not err.retryable or attempt == len(delays):
                    if err.retryable:
                        raise w.HubError("%s (gave up after %d attempts)" % (err, attempt + 1), status=err.status)
                    raise err
                time.sleep(delays[attempt])

    def resolve(self, revision):
        try:
            info = self.call(revision, lambda: self.api.model_info(self.repo_id, revision=revision))
        except w.HubError as err:
            # Mirrors (olah) answer 401 "repository not found" for an unknown revision: tell them apart.
            # Only for that kind: a gated repo also "exists", and must keep its own message.
            if (
                err.kind == "RepositoryNotFoundError"
                and revision != "main"
                and self.call("main", lambda: self.api.repo_exists(self.repo_id))
            ):
                raise w.describe_hub_error("RevisionNotFoundError", 404, self.repo_id, revision, self.endpoint)
            raise
        tree = self.call(
            revision, lambda: list(self.api.list_repo_tree(self.repo_id, revision=info.sha, recursive=True))
        )
        entries = []
        for item in tree:
            if not hasattr(item, "blob_id"):
                continue  # a folder
            lfs = getattr(item, "lfs", None)
            sha256 = getattr(lfs, "sha256", None) or (lfs.get("sha256") if isinstance(lfs, dict) else None)
            entries.append({"path": item.path, "size": item.size, "sha256": sha256, "git_sha1": item.blob_id})
        return info.sha, entries

    def download(self, commit, staging, params):
        self.call(
            commit,
            lambda: self.hf.snapshot_download(
                self.repo_id,
                revision=commit,
                local_dir=staging,
                endpoint=self.endpoint,
                token=self.token,
                allow_patterns=params["allow_patterns"] or None,
                ignore_patterns=params["ignore_patterns"] or None,
                max_workers=params["max_workers"],
            ),
        )


class Peer:
    """A host of the fleet that holds (or will hold) the verified snapshot, read through its rsync daemon.

    The hub is not contacted: the manifest comes from the host that read the hub, so a peer's copy is
    checked against the hub's metadata, never against itself. With ``peer_wait`` the copy completes only
    once those hosts announce a verified copy for this fan-out run (``_weights_fanout.wait_for_hosts``);
    with ``peer_stream`` it starts before, taking each file from the source's staging area as soon as it
    lands there (``_weights_fanout.stream_copy``), so the copies run under the seed's download instead of
    after it. A password given inline goes to rsync through a 0600 file in a private directory, removed
    on exit.
    """

    # rsync exit codes of a streaming pass that only mean "not there (yet)": partial transfer, vanished.
    _STREAM_PARTIAL = frozenset([0, 23, 24])

    def __init__(self, module, scratch):
        p = module.params
        self.module, self.url, self.password_file = module, p["peer_url"].rstrip("/") + "/", p["peer_password_file"]
        self.manifest = p["manifest"]
        self.scratch = scratch
        self.verified = {}  # path -> file_signature of the copy hashed while streaming
        self.streamed = 0
        self.rsync = module.get_bin_path("rsync", required=True)
        if self.password_file:
            w.check_token_file_mode(self.password_file, os.stat(self.password_file).st_mode)
        elif p["peer_password"] and not module.check_mode:
            private = tempfile.mkdtemp(prefix="fleetserve-peer-")  # mkdtemp: mode 0700
            scratch.append(private)
            self.password_file = os.path.join(private, "password")
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(p["peer_password"] + "\n")

    def resolve(self, revision):
        if not self.manifest or self.manifest.get("repo_id") != self.module.params["repo_id"]:
            raise w.WeightsError(
                "peer_url needs the manifest of %s returned by hf_snapshot on the host that read the "
                "hub: pass it as manifest" % self.module.params["repo_id"]
            )
        files = self.manifest["files"]
        return self.manifest["revision"], [dict(files[k], path=k) for k in files]

    def _auth(self):
        return ["--password-file=" + self.password_file] if self.password_file else []

    def _fetch_ready(self, url):
        into = tempfile.mkdtemp(prefix="fleetserve-ready-")
        try:
            rc, _out, err = self.module.run_command(
                [self.rsync, "-q", "--contimeout=10", "--timeout=30"] + self._auth() + [url, into + "/ready.json"]
            )
            text = ""
            if rc == 0:
                with open(os.path.join(into, "ready.json")) as fh:
                    text = fh.read()
            return rc, text, err
        finally:
            shutil.rmtree(into, ignore_errors=True)

    def wait(self, timeout):
        p = self.module.params
        waits = sorted(p["peer_wait"].items())
        if waits:
            # After streaming, the wait is the tail of the copy: poll at least each second rather than back off.
            fanout.wait_for_hosts(
                waits,
                p["fanout_run"],
                self._fetch_ready,
                time.monotonic,
                time.sleep,
                timeout,
                max_delay=1.0 if p["peer_stream"] else 5.0,
            )

    def _source_wait(self):
        """The (host, ready URL) of ``peer_wait`` served by the same peer server as ``peer_url``, if any."""
        server = "/".join(self.url.split("/", 3)[:3]) + "/"
        for host, url in sorted(self.module.params["peer_wait"].items()):
            if url.startswith(server):
                return host, url
        return None

    def _stream(self, commit, staging):
        """Copy what the source already holds while it still fetches; returns what is left, None if no stream."""
        source = self._source_wait()
        if not source:
            return None  # the source held its copy before this run: nothing is landing there
        host, ready_url = source
        p, files = self.module.params, self.manifest["files"]
        parent, name = self.url.rstrip("/").rsplit("/", 1)
        url = "%s/%s/" % (parent, w.staging_name(name, commit))
        private = tempfile.mkdtemp(prefix="fleetserve-stream-")
        self.scratch.append(private)
        wanted = os.path.join(private, "files")

        def state():
            # 'unreachable' ends the stream: the wait that follows gives a peer server time to come up, then names it.
            return fanout.poll_announcement(self._fetch_ready, host, ready_url, p["fanout_run"])[0]

        def pull(paths):
            with open(wanted, "w") as fh:
                fh.write("".join(rel + "\n" for rel in paths))
            argv = [self.rsync, "-a", "--files-from=" + wanted, "--ignore-missing-args"] + self._auth()
            rc, _out, err = self.module.run_command(argv + [url, staging.rstrip("/") + "/"])
            if rc not in self._STREAM_PARTIAL:
                self.module.debug("streaming pass from %s: rsync rc %d: %s" % (url, rc, err.strip()[-300:]))

        def arrived(paths):
            verified, rejected = [], []
            for rel in paths:
                if w.check_file(staging, rel, files[rel], full=False):
                    continue  # not landed yet
                if w.check_file(staging, rel, files[rel], full=True):
                    os.unlink(os.path.join(staging, rel))
                    rejected.append(rel)
                else:
                    self.verified[rel] = w.file_signature(os.path.join(staging, rel))
                    verified.append(rel)
            return verified, rejected

        pending = set(files) - set(self.verified)
        left = fanout.stream_copy(pending, state, pull, arrived, time.monotonic, time.sleep, p["peer_timeout"])
        self.streamed += len(pending) - len(left)
        return left

    def download(self, commit, staging, params):
        # peer_timeout bounds the whole wait for the source, streaming included, not each phase of it.
        deadline = time.monotonic() + params["peer_timeout"]
        if params["peer_stream"] and self._stream(commit, staging) == set():
            # Every file is here and hashed right against the hub's manifest: this copy no longer depends on
            # its source, so it need not wait for its announcement (each hop of a chain ends as soon as its
            # last file is in, not one publish after the host before it).
            return
        self.wait(max(deadline - time.monotonic(), 1.0))
        # Files streamed above are already here with the source's times: rsync's quick check skips them.
        argv = [self.rsync, "-a", "--delete", "--exclude=/.cache/", "--exclude=/" + w.MARKER] + self._auth()
        rc, _out, err = self.module.run_command(argv + [self.url, staging.rstrip("/") + "/"])
        if rc != 0:
            raise w.WeightsError(
                "copying from peer %s failed (rsync rc %d: %s): check that the peer's rsync daemon "
                "runs and that this host can reach it" % (self.url, rc, err.strip()[-300:])
            )


class Git:
    """Guide A's `git clone` path without two copies on disk.

    A pointer-only clone (GIT_LFS_SKIP_SMUDGE=1) gives the commit, the file list, the git blob ids and
    the LFS oids; `git lfs fetch` brings the objects into the clone's .git/lfs/objects, and each object
    is hard-linked onto its path in staging. The clone is then deleted, so every weight exists once.
    The token travels in the git process environment (http.extraHeader), never in argv or a file.
    """

    def __init__(self, module, endpoint, token, dest, scratch):
        self.module, self.url = module, "%s/%s" % (endpoint, module.params["repo_id"])
        self.git = module.get_bin_path("git", required=True)
        self.env = {"GIT_LFS_SKIP_SMUDGE": "1", "GIT_TERMINAL_PROMPT": "0"}
        if token:
            self.env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader",
                GIT_CONFIG_VALUE_0="Authorization: Bearer %s" % token,
            )
        parent = w.existing_ancestor(os.path.dirname(dest))
        # Same filesystem as dest, so objects can be hard-linked; system tmp in check mode (removed).
        self.work = tempfile.mkdtemp(prefix=".fleetserve-git-", dir=None if module.check_mode else parent)
        scratch.append(self.work)
        self.lfs = {}

    def _run(self, *args, **kwargs):
        rc, out, err = self.module.run_command(
            [self.git] + list(args), cwd=kwargs.get("cwd", self.work), environ_update=self.env
        )
        if rc != 0:
            text = err.strip()[-300:]
            if "not found" in text or "Authentication failed" in text or "could not read Username" in text:
                raise w.HubError(
                    "git could not read %s: %s; check weights_repo_id, and give a token if the "
                    "repository is gated or private" % (self.url, text)
                )
            raise w.HubError("git %s failed for %s (rc %d): %s" % (args[0], self.url, rc, text))
        return out

    def resolve(self, revision):
        self._run("clone", "--quiet", "--no-checkout", self.url, self.work, cwd=None)
        rc, out, _err = self.module.run_command(
            [self.git, "rev-parse", "--verify", "--quiet", revision + "^{commit}"],
            cwd=self.work,
            environ_update=self.env,
        )
        if rc != 0:
            rc, out, _err = self.module.run_command(
                [self.git, "rev-parse", "--verify", "--quiet", "origin/%s^{commit}" % revision],
                cwd=self.work,
                environ_update=self.env,
            )
        if rc != 0:
            raise w.describe_hub_error("RevisionNotFoundError", 404, self.module.params["repo_id"], revision, self.url)
        commit = out.strip()
        entries = []
        for path, sha1, size in w.parse_ls_tree(self._run("ls-tree", "-r", "-l", "-z", commit)):
            pointer = None
            if size <= w.LFS_POINTER_MAX:
                pointer = w.parse_lfs_pointer(self._run("cat-file", "blob", sha1))
            if pointer:
                self.lfs[path] = pointer[0]
                entries.append({"path": path, "size": pointer[1], "sha256": pointer[0], "git_sha1": None})
            elif path != ".gitattributes":
                entries.append({"path": path, "size": size, "sha256": None, "git_sha1": sha1})
        return commit, entries

    def download(self, commit, staging, params):
        manifest_paths = list(
            w.select_files(list(self._all_paths(commit)), params["allow_patterns"], params["ignore_patterns"])
        )
        self._run("checkout", "--quiet", "--detach", commit)
        wanted = [p for p in manifest_paths if p in self.lfs and not os.path.exists(os.path.join(staging, p))]
        if wanted:
            self._run("lfs", "fetch", "origin", commit, "--include", ",".join(wanted))
        git_dir = os.path.join(self.work, ".git")
        for rel in manifest_paths:
            target = os.path.join(staging, rel)
            if os.path.exists(target):
                continue
            src = w.lfs_object_path(git_dir, self.lfs[rel]) if rel in self.lfs else os.path.join(self.work, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.exists(src):
                os.link(src, target)

    def _all_paths(self, commit):
        return [
            p for p, _s, _n in w.parse_ls_tree(self._run("ls-tree", "-r", "-l", "-z", commit)) if p != ".gitattributes"
        ]
