#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_weights_info
short_description: Verify a local model snapshot byte for byte, without touching it
version_added: "0.1.0"
description:
  - Checks every file of a local snapshot against a manifest of hub metadata (size; sha256 for LFS files, the git
    blob id for the others), and the safetensors index (every shard present, every header parses and matches the
    file size, each shard holds exactly the tensors the index maps to it).
  - Files nobody asked for are reported too, except huggingface_hub's own C(.cache/**) bookkeeping
    (C(*.incomplete), C(*.lock), C(*.metadata)) and the completion marker.
  - Reads only; needs no network and no Python package beyond the standard library, so it runs on hosts whose
    engines use C(HF_HUB_OFFLINE=1).
author:
  - fleetserve maintainers (@fleetserve)
options:
  path:
    description: The snapshot directory.
    type: path
    required: true
  manifest:
    description:
      - The expected content, as returned by M(fleetserve.minimax.hf_snapshot) on the host that read the hub.
      - When omitted, the manifest recorded in the snapshot's completion marker is used (and a missing marker is
        reported as an incomplete snapshot).
    type: dict
  full:
    description: Hash every file. When false, only presence, sizes and safetensors headers are checked.
    type: bool
    default: true
  fail_on_problems:
    description: Fail (after reporting) when anything does not match. When false, only report.
    type: bool
    default: true
  release_record:
    description:
      - A release record to read in the same call (the engine roles' C(current.json), what the host serves),
        returned as RV(release); a missing file is returned as an empty dict.
      - A record that cannot be read or is not a JSON object fails the module, whatever O(fail_on_problems) says,
        and RV(release) is then not returned.
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
    details: Never changes anything; always reports C(changed=false).
seealso:
  - module: fleetserve.minimax.hf_snapshot
"""

EXAMPLES = r"""
- name: Weights | Verify the copy before the engine may start
  fleetserve.minimax.model_weights_info:
    path: /srv/models/MiniMax-M2.5
    manifest: "{{ hostvars[weights_seed_host].__weights_snapshot.manifest }}"
  register: weights_check

- name: Weights | Check the copy the new plan names and read the release the host serves, in one call
  fleetserve.minimax.model_weights_info:
    path: /srv/models/MiniMax-M2.5
    full: false
    fail_on_problems: false
    release_record: /var/lib/fleetserve/release/current.json
  register: weights_held
  failed_when: weights_held.release is not defined
"""

RETURN = r"""
ok:
  description: Whether the snapshot is complete and every check passed.
  returned: always
  type: bool
problems:
  description: One entry per bad file, with C(path), C(problem) (missing, size, sha256, git_sha1, unexpected, header,
    tensors, index) and C(detail).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "model-00002-of-00003.safetensors", "problem": "sha256", "detail": "sha256 ab.., the hub says cd.."}]
revision:
  description: The commit the manifest describes.
  returned: always
  type: str
repo_id:
  description: The repository the manifest describes.
  returned: always
  type: str
files:
  description: Number of files the manifest lists.
  returned: always
  type: int
bytes:
  description: Total bytes the manifest lists.
  returned: always
  type: int
hashed:
  description: Whether file contents were hashed (O(full)).
  returned: always
  type: bool
release:
  description: The release record O(release_record) names, or an empty dict where there is none.
  returned: when O(release_record) is given and could be read, also when the snapshot check fails
  type: dict
  sample: {"model_dir": "/srv/models/MiniMax-M2.5", "revision": "main"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            manifest=dict(type="dict"),
            full=dict(type="bool", default=True),
            fail_on_problems=dict(type="bool", default=True),
            release_record=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    served = {}
    if p["release_record"]:
        try:
            served = {"release": w.read_release_record(p["release_record"])}
        except (ValueError, OSError) as exc:
            module.fail_json(msg=str(exc), ok=False, problems=[], path=p["path"], revision="", repo_id="")
    try:
        manifest = p["manifest"] or w.manifest_from_marker(w.read_marker(p["path"]))
        report = w.verify_tree(p["path"], manifest, full=p["full"])
    except (ValueError, OSError) as exc:
        module.fail_json(msg=str(exc), ok=False, problems=[], path=p["path"], revision="", repo_id="", **served)
    report.update(changed=False, revision=manifest["revision"], repo_id=manifest["repo_id"], path=p["path"], **served)
    if p["fail_on_problems"] and not report["ok"]:
        first = report["problems"][0]
        module.fail_json(
            msg="%s does not match %s@%s: %d problem(s), first: %s %s (%s); run the weights role to fetch it again"
            % (
                p["path"],
                manifest["repo_id"],
                manifest["revision"],
                len(report["problems"]),
                first["path"],
                first["problem"],
                first["detail"],
            ),
            **report,
        )
    module.exit_json(**report)


if __name__ == "__main__":
    main()
