"""Pure helpers for the dcgm_exporter role: NVIDIA's DCGM / DCGM Exporter version pairing and packages.

NVIDIA tags every DCGM Exporter release ``<dcgm version>-<exporter version>`` (4.6.0-4.8.3: exporter 4.8.3,
built and tested against DCGM 4.6.0) and documents that the exporter must run with the DCGM it is paired
with (docs.nvidia.com/datacenter/dcgm/latest/installation/install-dcgm-exporter.html, "Version
compatibility"). Debian packages carry only one half each: ``datacenter-gpu-manager-exporter`` the exporter
version, ``datacenter-gpu-manager-4-*`` the DCGM version (with epoch 1). The pairing therefore has to come
from the release tag, or from the table of tags the role knows (roles/dcgm_exporter/vars/main.yml).
Errors are ValueError with a message that names the fix.
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_RELEASE = re.compile(r"^(\d+\.\d+\.\d+)-(\d+\.\d+\.\d+)$")
# DCGM 4 is split into packages named by major (datacenter-gpu-manager-4-core, -4-cuda13, ...).
DCGM_MAJOR = "4"
MODES = ("package", "container", "auto")


def _example(pairs: dict) -> str:
    newest = sorted(pairs, key=lambda v: tuple(int(p) for p in v.split(".")))[-1] if pairs else "4.8.3"
    return f"{pairs.get(newest, '4.6.0')}-{newest}"


def pairing(release: str, pairs: dict) -> dict:
    """``{dcgm, exporter, release}`` for a ``dcgm_exporter_version`` value.

    ``release`` is NVIDIA's release tag ``<dcgm>-<exporter>`` (4.6.0-4.8.3), or a bare exporter version
    (4.8.3) that ``pairs`` (exporter version -> DCGM version, from NVIDIA's release notes) knows.
    Refused: a bare exporter version without a known pair, a tag whose DCGM half contradicts the known
    pair, a DCGM outside major 4, anything else.
    """
    release = str(release or "").strip()
    example = _example(pairs)
    match = _RELEASE.match(release)
    if match:
        dcgm, exporter = match.groups()
        known = pairs.get(exporter)
        if known is not None and known != dcgm:
            raise ValueError(
                f"dcgm_exporter_version {release} pairs DCGM Exporter {exporter} with DCGM {dcgm}, but NVIDIA "
                f"released exporter {exporter} with DCGM {known}. Set dcgm_exporter_version: {known}-{exporter}."
            )
    elif _VERSION.match(release):
        exporter = release
        dcgm = pairs.get(exporter)
        if dcgm is None:
            known = ", ".join(f"{d}-{e}" for e, d in sorted(pairs.items())) or "none"
            raise ValueError(
                f"dcgm_exporter_version {release} is a DCGM Exporter version without a paired DCGM version, and "
                f"the exporter must run with the DCGM it was released with. Set dcgm_exporter_version to NVIDIA's "
                f"release tag <dcgm version>-<exporter version> (DCGM Exporter release notes; known here: {known})."
            )
    else:
        raise ValueError(
            f"dcgm_exporter_version {release!r} is not a DCGM Exporter release: set dcgm_exporter_version to "
            f"NVIDIA's release tag <dcgm version>-<exporter version>, e.g. {example}."
        )
    if dcgm.split(".", 1)[0] != DCGM_MAJOR:
        raise ValueError(
            f"dcgm_exporter_version {dcgm}-{exporter} needs DCGM {dcgm}, but the dcgm_exporter role installs DCGM "
            f"{DCGM_MAJOR} (datacenter-gpu-manager-{DCGM_MAJOR}-* packages). Set dcgm_exporter_version to a release "
            f"paired with DCGM {DCGM_MAJOR}.x, e.g. {example}."
        )
    return {"dcgm": dcgm, "exporter": exporter, "release": f"{dcgm}-{exporter}"}


def cuda_major(cuda_version: str | None) -> str:
    """13 from the driver's CUDA version 13.0 (nvidia-smi): DCGM 4 ships one package per CUDA major."""
    match = re.match(r"^(\d+)\.\d+", str(cuda_version or ""))
    if not match:
        raise ValueError(
            f"the driver reports no CUDA version ({cuda_version!r}), so the DCGM package for it "
            f"(datacenter-gpu-manager-{DCGM_MAJOR}-cuda<major>) is unknown: run the nvidia_driver role first "
            "(nvidia-smi must work), or pin the major with dcgm_exporter_cuda_major."
        )
    return match.group(1)


def dcgm_packages(cuda: str) -> list:
    """DCGM's packages for a CUDA major, in install order (NVIDIA: apt install datacenter-gpu-manager-4-cuda<major>)."""
    if not re.match(r"^\d+$", str(cuda)):
        raise ValueError(
            f"CUDA major {cuda!r} is not a number: set dcgm_exporter_cuda_major to e.g. 13, or leave it empty."
        )
    return [f"datacenter-gpu-manager-{DCGM_MAJOR}-core", f"datacenter-gpu-manager-{DCGM_MAJOR}-cuda{cuda}"]


def decide_mode(mode: str, docker_running: bool) -> str:
    """``package`` or ``container``; ``auto`` takes the container where Docker already runs (vLLM hosts)."""
    if mode not in MODES:
        raise ValueError(f"dcgm_exporter_mode {mode!r} is not one of {', '.join(MODES)}: set dcgm_exporter_mode.")
    if mode == "auto":
        return "container" if docker_running else "package"
    return mode


def check_port(port: int, taken: dict) -> None:
    """Refuse an exporter port that another service of this host already uses (``taken``: name -> port)."""
    clashes = sorted(name for name, other in taken.items() if other is not None and int(other) == int(port))
    if clashes:
        raise ValueError(
            f"dcgm_exporter_port {port} is also the port of {', '.join(clashes)} on this host: set "
            "dcgm_exporter_port to a free port (NVIDIA's default is 9400)."
        )


def sections(text: str) -> dict:
    """``{name: text}`` from the output of the role's host read, whose parts each start with a line ``--- name``.

    One command returns what several tasks used to ask the host for (preflight.yml); text before the first
    marker is dropped, a name without text maps to an empty string.
    """
    parts: dict = {}
    name = None
    for line in (text or "").splitlines():
        if line.startswith("--- "):
            name = line[4:].strip()
            parts[name] = []
        elif name is not None:
            parts[name].append(line)
    return {key: "\n".join(lines) for key, lines in parts.items()}
