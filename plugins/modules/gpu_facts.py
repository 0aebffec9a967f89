#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Read the NVIDIA GPUs of a host, their links, NVSwitches and fabric state
description:
  - Runs C(nvidia-smi -q -x), C(nvidia-smi --query-gpu=...) (for the compute capability, which the XML lacks)
    and C(nvidia-smi topo -m), and looks for NVSwitch devices under O(nvswitch_proc_dir).
  - On a host without a driver (no nvidia-smi) and with O(source=auto), reads the GPUs from PCI instead, that is
    the NVIDIA functions under O(pci_devices_dir), each described by its device ID's entry in O(pci_gpus).
    The result has the same shape, with RV(source=pci), no driver version and no links.
  - Fails, with a stable RV(reason) and a message that names the fix, when nvidia-smi is missing, the kernel
    driver is not loaded, the driver and NVML library versions differ, no GPU is visible, or the output does not parse.
  - Changes nothing.
version_added: 0.1.0
author: fleetserve maintainers (@fleetserve)
options:
  nvidia_smi:
    description: Name or absolute path of the nvidia-smi executable; a name is looked up on E(PATH) and in C(/usr/bin).
    type: str
    default: nvidia-smi
  nvswitch_proc_dir:
    description:
      - Directory the NVSwitch kernel driver populates; each entry under its C(devices/) is one NVSwitch.
      - Only tests change it.
    type: path
    default: /proc/driver/nvidia-nvswitch
  source:
    description:
      - V(auto) reads nvidia-smi where it is installed and PCI where it is not (a host before its driver).
      - V(nvidia_smi) requires nvidia-smi (used to confirm a plan made from PCI once the driver is installed).
      - V(pci) reads PCI only.
    type: str
    choices: [auto, nvidia_smi, pci]
    default: auto
  pci_devices_dir:
    description:
      - The kernel's list of PCI functions, one directory per function with C(vendor), C(device) and C(class) files.
      - Only tests change it.
    type: path
    default: /sys/bus/pci/devices
  pci_gpus:
    description:
      - What each NVIDIA PCI device ID is, for reading GPUs from PCI, keyed by the ID (V(0x2335)).
      - Each entry has C(name) (as nvidia-smi prints it), C(memory_total_mib), C(compute_capability) and C(architecture).
      - The preflight role passes the table of its catalog data (C(roles/preflight/vars/gpus.yml)).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only; there is nothing to diff.
  idempotent:
    support: full
    description: Never changes the host.
notes:
  - With nvidia-smi, needs a driver that knows the C(compute_cap) query field (510 or later).
"""

EXAMPLES = r"""
- name: Preflight | Read GPU facts
  fleetserve.minimax.gpu_facts:
  register: gpu

- name: Preflight | Require eight GPUs
  ansible.builtin.assert:
    that: gpu.gpu_count == 8
    fail_msg: "{{ gpu.gpu_count }} GPUs found, the plan needs 8"
"""

RETURN = r"""
source:
  description: Where the facts come from, V(nvidia-smi) or V(pci) (a host without a driver).
  returned: success
  type: str
  sample: nvidia-smi
driver_version:
  description: NVIDIA driver version; null when read from PCI.
  returned: success
  type: str
  sample: "580.159.04"
cuda_version:
  description: Highest CUDA version the driver supports.
  returned: success
  type: str
  sample: "13.0"
gpu_count:
  description: Number of GPUs.
  returned: success
  type: int
  sample: 2
gpus:
  description: One entry per GPU, in nvidia-smi order.
  returned: success
  type: list
  elements: dict
  sample:
    - index: 0
      name: NVIDIA H200
      uuid: GPU-912424c3-a0a4-6d4d-a045-c302cd862754
      architecture: Hopper
      pci_bus_id: "00000000:00:06.0"
      memory_total_mib: 143771
      memory_used_mib: 0
      compute_capability: "9.0"
      persistence_mode: true
      mig_mode: false
      fabric_state: Completed
      fabric_status: Success
links:
  description: Connection type between each GPU pair C(i-j) (i < j) as C(topo -m) prints it (NV18, SYS, PIX, ...).
  returned: success
  type: dict
  sample: {"0-1": "NV18"}
nvlink_counts:
  description: Number of bonded NVLinks between each GPU pair; 0 where the pair talks over PCIe.
  returned: success
  type: dict
  sample: {"0-1": 18}
nvswitch_present:
  description: Whether the NVSwitch kernel driver lists any device.
  returned: success
  type: bool
nvswitch_count:
  description: Number of NVSwitch devices.
  returned: success
  type: int
fabric_manager_state:
  description:
    - GPU fabric state from the XML, V(Completed) once Fabric Manager has trained the fabric.
    - V(mixed) if the GPUs differ; null where the GPUs report none (no NVSwitch fabric).
  returned: success
  type: str
  sample: Completed
fabric_not_ready:
  description:
    - One C(GPU i, state/status) entry for each GPU whose fabric is not C(Completed/Success), where the host has
      NVSwitches or its GPUs report a fabric; empty when the fabric is ready, when there is none, and when read from PCI.
  returned: success
  type: list
  elements: str
  sample: ["GPU 0: In Progress/N/A"]
reason:
  description: >-
    Why it failed: V(nvidia_smi_missing), V(driver_not_loaded), V(driver_library_mismatch), V(no_gpus),
    V(parse_error), V(nvidia_smi_failed) or V(unknown_pci_device).
  returned: failure
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetserve.minimax.plugins.module_utils import _gpu


def count_nvswitches(proc_dir: str) -> int:
    devices = os.path.join(proc_dir, "devices")
    return len(os.listdir(devices)) if os.path.isdir(devices) else 0


def read_pci(devices_dir: str) -> list:
    """[{address, vendor, device, class}] for every PCI function the kernel lists."""
    functions = []
    for address in sorted(os.listdir(devices_dir)) if os.path.isdir(devices_dir) else []:
        ids = {}
        for name in ("vendor", "device", "class"):
            try:
                with open(os.path.join(devices_dir, address, name)) as handle:
                    ids[name] = handle.read().strip()
            except OSError:
                break
        if len(ids) == 3:
            functions.append(dict(ids, address=address))
    return functions


def gather(module: AnsibleModule) -> dict:
    source = module.params["source"]
    binary = None if source == "pci" else module.get_bin_path(module.params["nvidia_smi"], opt_dirs=["/usr/bin"])
    if source == "pci" or (binary is None and source == "auto"):
        # No driver yet (a host as it arrives): PCI says which GPUs it has.
        return dict(_gpu.parse_pci(read_pci(module.params["pci_devices_dir"]), module.params["pci_gpus"]), source="pci")
    if binary is None:
        raise _gpu.GpuFactsError(
            "nvidia_smi_missing",
            f"{module.params['nvidia_smi']} was not found on PATH; install the NVIDIA driver "
            "(role fleetserve.minimax.nvidia_driver) or set preflight_nvidia_smi to its absolute path",
        )

    def run(args):
        # LC_ALL=C: the messages classify_failure looks for are the untranslated ones.
        rc, out, err = module.run_command([binary] + args, environ_update={"LC_ALL": "C"})
        if rc != 0:
            raise _gpu.classify_failure(rc, out + "\n" + err)
        return out

    xml_facts = _gpu.parse_query_xml(run(["-q", "-x"]))
    caps = _gpu.parse_query_csv(run(_gpu.QUERY_ARGS))
    topo = _gpu.parse_topo(run(["topo", "-m"]))
    facts = _gpu.merge_facts(xml_facts, caps, topo, count_nvswitches(module.params["nvswitch_proc_dir"]))
    return dict(facts, source="nvidia-smi")


def main():
    module = AnsibleModule(
        argument_spec={
            "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
            "nvswitch_proc_dir": {"type": "path", "default": "/proc/driver/nvidia-nvswitch"},
            "source": {"type": "str", "choices": ["auto", "nvidia_smi", "pci"], "default": "auto"},
            "pci_devices_dir": {"type": "path", "default": "/sys/bus/pci/devices"},
            "pci_gpus": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    try:
        facts = gather(module)
    except _gpu.GpuFactsError as err:
        module.fail_json(msg=str(err), reason=err.reason, changed=False)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
