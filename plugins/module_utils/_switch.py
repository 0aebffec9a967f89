# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine switch: staged files into place, in one pass on the host (module engine_switch).

The engine roles render a release's env file, secret config and unit to staged paths while the old
release still serves. The switch, inside the rollout's drained window, then only installs them: each
staged file is copied to a temporary file beside its destination (content, owner and mode of the staged
file) and renamed over it, so a reader sees the old file or the new one, never half of one. The staged
file stays, so the next stage step finds it unchanged (idempotent re-runs). Nothing here reads a file's
content into a message: staged secrets stay out of results and logs.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile


class SwitchError(Exception):
    """One clear refusal, naming the fix."""


def file_matches(src, dest):
    """True when dest already has src's content, owner, group and mode."""
    try:
        dst_stat = os.lstat(dest)
    except FileNotFoundError:
        return False
    if not os.path.isfile(dest) or os.path.islink(dest):
        return False
    src_stat = os.stat(src)
    same_meta = (src_stat.st_uid, src_stat.st_gid, src_stat.st_mode & 0o7777) == (
        dst_stat.st_uid,
        dst_stat.st_gid,
        dst_stat.st_mode & 0o7777,
    )
    return same_meta and filecmp.cmp(src, dest, shallow=False)


def _replace_atomically(dest, fill, mode, owner=None):
    """Write dest through a temporary file in its directory, renamed over it: fill(binary file) writes the
    content; mode and (uid, gid) owner are set before the rename. A failure leaves dest as it was."""
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(dest), dir=os.path.dirname(dest) or ".")
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def install_file(src, dest):
    """Copy src over dest atomically, with src's owner (as root) and mode."""
    src_stat = os.stat(src)

    def fill(out):
        with open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)

    owner = (src_stat.st_uid, src_stat.st_gid) if os.geteuid() == 0 else None
    _replace_atomically(dest, fill, src_stat.st_mode & 0o7777, owner)


def link_matches(target, path):
    return os.path.islink(path) and os.readlink(path) == target


def install_link(target, path):
    """Point the symlink path at target atomically (a temporary link renamed over it). A real directory at
    path (the single-venv layout before releases) is removed first."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    tmp = os.path.join(os.path.dirname(path) or ".", ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def write_text(dest, content, mode=0o644):
    """Write content to dest atomically (its directory made if missing), mode given, owner the caller (root)."""
    directory = os.path.dirname(dest) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    _replace_atomically(dest, lambda out: out.write(content.encode("utf-8")), mode)


def text_matches(dest, content):
    try:
        with open(dest) as inp:
            return inp.read() == content
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return False


def plan_switch(files, link, remove, require, require_fix):
    """What the switch changes: (files to install [(src, dest)], link to set or None, paths to remove).

    files: [{"src", "dest"}] staged file -> live path; link: {"src", "dest"} or None (dest a symlink to src);
    remove: paths that must not exist; require: paths the staged release must have (its venv's python),
    refused with require_fix when missing. Raises SwitchError naming the fix; reads, changes nothing.
    """
    missing = [path for path in require if not os.path.exists(path)]
    if missing:
        raise SwitchError("%s not found: the release was not staged. %s" % (", ".join(missing), require_fix))
    unstaged = [item["src"] for item in files if not os.path.isfile(item["src"])]
    if unstaged:
        raise SwitchError(
            "staged file %s not found: the release was not staged. %s" % (", ".join(unstaged), require_fix)
        )
    to_install = [(item["src"], item["dest"]) for item in files if not file_matches(item["src"], item["dest"])]
    to_link = None
    if link and not link_matches(link["src"], link["dest"]):
        to_link = (link["src"], link["dest"])
    to_remove = [path for path in remove if os.path.lexists(path)]
    return to_install, to_link, to_remove


def apply_switch(to_install, to_link, to_remove):
    """Install what plan_switch found; the unit's daemon-reload and restart are the caller's."""
    for src, dest in to_install:
        install_file(src, dest)
    if to_link:
        install_link(*to_link)
    for path in to_remove:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def service_action(active_state, changed, restart):
    """What the unit needs: "start" (not running), "restart" (running an older configuration, or asked), or None."""
    if active_state not in ("active", "activating", "reloading"):
        return "start"
    if changed or restart:
        return "restart"
    return None
