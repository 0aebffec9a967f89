# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which model weights a host may drop once its new release has verified. Private: no API promise.

The policy (docs/weights.md, "Pruning"): the weights of the running release (``current.json``) and of the
recorded previous release (``previous.json``, what a rollback returns to, offline) are never removed, nor
any directory the caller protects (the release a rollback just left). Of the other directories this
engine's releases used, the ``keep_previous`` most recently used count as kept previous releases too
(``previous.json``'s is the first of them); the rest are removed. Only directories the releases of this
record directory used are candidates, kept in ``weights-history.json`` beside the records (most recently
used last), so the weights of another engine on the same host are never touched; and only a directory
holding the weights role's completion marker is ever removed.
"""

from __future__ import annotations

import json
import os

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w

HISTORY = "weights-history.json"


def record_dir(record):
    """The weights directory a release record names (the engine roles' current.json, previous.json)."""
    if not isinstance(record, dict):
        return None
    found = record.get("model_dir") or (record.get("plan") or {}).get("model_dir")
    return os.path.normpath(found) if isinstance(found, str) and found.startswith("/") else None


def check_keep_previous(keep_previous):
    if not isinstance(keep_previous, int) or isinstance(keep_previous, bool) or keep_previous < 1:
        raise w.WeightsError(
            "weights_keep_previous is %r: set it to 1 or more; the recorded previous release (previous.json) is "
            "what a rollback returns to without a download, so its weights are always kept" % (keep_previous,)
        )


def decide(history, current, previous, protect, keep_previous):
    """The new history (most recently used last) and the directories to remove, most recently used first.

    ``history``: directories used before, oldest first; ``current``/``previous``: the records' directories
    (None when there is no record); ``protect``: directories never removed.
    """
    check_keep_previous(keep_previous)
    used = [d for d in history if d]
    for d in [previous, *protect, current]:  # the order of use: the running release last
        if d:
            used = [x for x in used if x != d] + [d]
    if not current:
        return used, []  # no running release on record: nothing is known to be unused
    always = {d for d in [current, previous, *protect] if d}
    earlier = [d for d in reversed(used) if d != current]  # most recently used first
    kept_previous = [d for d in earlier if d == previous][:1]
    for d in earlier:
        if len(kept_previous) >= keep_previous:
            break
        if d not in kept_previous:
            kept_previous.append(d)
    remove = [d for d in earlier if d not in always and d not in kept_previous]
    return [d for d in used if d not in remove], remove


def read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise w.WeightsError("cannot read %s (%s): fix or remove the file; nothing was pruned" % (path, exc)) from None


def read_history(release_dir):
    data = read_json(os.path.join(release_dir, HISTORY))
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("used"), list):
        raise w.WeightsError(
            '%s is not a weights history ({"used": [directories]}): remove it; nothing was pruned'
            % os.path.join(release_dir, HISTORY)
        )
    return [os.path.normpath(d) for d in data["used"] if isinstance(d, str) and d.startswith("/")]


def removable(path):
    """Only a published copy of the weights role (its completion marker) is ever removed: never a
    directory someone else put there, never a copy still being made."""
    marker = w.read_marker(path)
    return os.path.isdir(path) and not os.path.islink(path) and bool(marker) and marker.get("complete") is True


def write_history(release_dir, used):
    path = os.path.join(release_dir, HISTORY)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(json.dumps({"used": used}, indent=1) + "\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
