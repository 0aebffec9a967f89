"""Build a wheel named like a real engine (``sglang`` or ``vllm``) that installs engine-sim instead.

usage: python build_wheel.py {sglang|vllm} VERSION OUT_DIR   -> prints the wheel path

The wheel carries the exact version the roles pin, so ``uv pip install sglang==0.5.23 --find-links DIR
--no-index`` resolves it exactly as it would the real package. Written with zipfile (stdlib): no build
backend, no network, byte-identical output for identical sources (fixed timestamps).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EPOCH = (2026, 1, 1, 0, 0, 0)


def _files(package):
    for root, prefix in (
        (HERE / "fleetserve_engine_sim", "fleetserve_engine_sim"),
        (HERE / "standins" / package, package),
    ):
        for path in sorted(root.rglob("*.py")):
            yield f"{prefix}/{path.relative_to(root).as_posix()}", path.read_bytes()


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build(package: str, version: str, out_dir: Path) -> Path:
    if package not in ("sglang", "vllm"):
        raise ValueError(f"package must be sglang or vllm, not {package!r}")
    dist = f"{package}-{version}.dist-info"
    meta = {
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
            "Summary: fleetserve engine-sim standing in for the real engine (tests only)\n"
            "Requires-Python: >=3.9\n"
        ),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: fleetserve-build-wheel\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if package == "vllm":
        meta[f"{dist}/entry_points.txt"] = "[console_scripts]\nvllm = vllm.entrypoints.cli.main:main\n"
    entries = list(_files(package)) + [(k, v.encode()) for k, v in meta.items()]
    record = "\n".join([_record_line(n, d) for n, d in entries] + [f"{dist}/RECORD,,", ""])
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries + [(f"{dist}/RECORD", record.encode())]:
            zf.writestr(zipfile.ZipInfo(name, EPOCH), data)
    return wheel


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2])
    print(build(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
