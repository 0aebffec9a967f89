#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: weights_prune
short_description: Remove the model weights an engine's releases no longer need, keeping the previous ones
version_added: "0.1.0"
description:
  - Run after a host's new release has verified. Reads the release records in O(release_dir) (C(current.json), the
    running release; C(previous.json), what a rollback returns to) and the directories this engine's releases used
    (C(weights-history.json) there, kept up to date by this module, most recently used last).
  - Never removes the weights of the running release, of the recorded previous release, or any of O(protect). Of the
    other directories the releases used, the O(keep_previous) most recently used are kept (C(previous.json)'s counts
    as the first); the rest are removed.
  - Only a directory holding the weights role's completion marker (a published copy) is removed; anything else is
    kept and reported. Without C(current.json) nothing is removed.
author:
  - fleetserve maintainers (@fleetserve)
options:
  release_dir:
    description: Directory of the release records (C(fleetserve_release_dir)).
    type: path
    required: true
  keep_previous:
    description:
      - How many earlier releases keep their weights beside the running one. At least 1, the recorded previous release,
        so a rollback needs no download. Range 1 to 100.
    type: int
    default: 1
  protect:
    description: More weights directories never removed, for example the release a rollback just left.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports what would be removed; removes and writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
seealso:
  - module: fleetserve.minimax.hf_snapshot
"""

EXAMPLES = r"""
- name: Weights | Remove the weights no release needs any more
  fleetserve.minimax.weights_prune:
    release_dir: /var/lib/fleetserve/releases
    keep_previous: 1
"""

RETURN = r"""
removed:
  description: Weights directories removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
kept:
  description: Weights directories the releases used that stay, most recently used last.
  returned: always
  type: list
  elements: str
skipped:
  description: Directories the policy would drop but that hold no completion marker of the weights role, so stay.
  returned: always
  type: list
  elements: str
freed_bytes:
  description: Bytes the removed directories held.
  returned: always
  type: int
"""

import os
import shutil


from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights_prune as wp
from ansible_collections.fleetserve.minimax.plugins.module_utils._bounds import BoundedModule


def run(module):
    p = module.params
    release_dir = p["release_dir"]
    current = wp.record_dir(wp.read_json(os.path.join(release_dir, "current.json")))
    previous = wp.record_dir(wp.read_json(os.path.join(release_dir, "previous.json")))
    protect = [os.path.normpath(d) for d in p["protect"] if d]
    history = wp.read_history(release_dir)
    used, drop = wp.decide(history, current, previous, protect, p["keep_previous"])
    remove = [d for d in drop if wp.removable(d)]
    skipped = [d for d in drop if d not in remove and os.path.lexists(d)]
    used = skipped + [d for d in used if d not in remove and os.path.isdir(d)]
    result = dict(
        removed=remove,
        kept=[d for d in used if d not in skipped],
        skipped=skipped,
        freed_bytes=sum(w.dir_bytes(d) for d in remove),
        changed=bool(remove) or (used != history and current is not None),
    )
    if module.check_mode or not result["changed"]:
        return result
    for path in remove:
        # Renamed first: a directory half removed never looks like weights to anyone.
        doomed = os.path.join(os.path.dirname(path), ".%s.pruning" % os.path.basename(path))
        os.rename(path, doomed)
        shutil.rmtree(doomed)
    os.makedirs(release_dir, exist_ok=True)
    wp.write_history(release_dir, used)
    return result


# The ranges DOCUMENTATION states (Range LOW to HIGH.), checked before anything is read or removed.
BOUNDS = dict(keep_previous=(1, 100))


def main():
    module = BoundedModule(
        BOUNDS,
        argument_spec=dict(
            release_dir=dict(type="path", required=True),
            keep_previous=dict(type="int", default=1),
            protect=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
