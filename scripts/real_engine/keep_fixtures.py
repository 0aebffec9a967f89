#!/usr/bin/env python3
"""Turn one device run's output (vllm_on_device.py run --out DIR) into tests/fixtures/real-vllm-0.26.0/.

Keeps what the tests compare against and drops bulk: the stream's first and last events only, the
/metrics names and the lines the rollout reads, not the whole exposition. Refuses to write anything
that still looks like an API key.

usage: keep_fixtures.py RUN_OUT_DIR [FIXTURE_DIR]
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_EVENTS, LAST_EVENTS = 6, 4


def stream_events(lines: list) -> dict:
    """The SSE lines (timestamps dropped) as events: the first few, the last few, and the count."""
    events = [text.rstrip("\n") for _, text in lines if text.strip()]
    return {
        "events": len(events),
        "first": events[:FIRST_EVENTS],
        "last": events[-LAST_EVENTS:],
        "blank_line_after_each_event": sum(1 for _, t in lines if not t.strip()) == len(events),
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    src = Path(argv[0])
    dst = Path(argv[1]) if len(argv) > 1 else ROOT / "tests" / "fixtures" / "real-vllm-0.26.0"
    dst.mkdir(parents=True, exist_ok=True)
    rec = json.loads((src / "recordings.json").read_text())
    answers = rec.pop("answers")
    stream = answers.pop("chat_stream")
    stream["body"] = stream_events(stream["body"])
    answers["chat_stream"] = stream
    answers.pop("metrics_after_load", None)
    answers["metrics"].pop("body", None)  # the names and the gauges we read are kept, not the exposition
    rec["answers"] = answers
    rec.pop("pid", None)
    rec["log_figures"].pop("memory_lines", None)
    log = gzip.decompress((src / "vllm-full.log.gz").read_bytes()).decode("utf-8", "replace")
    rec["log_memory_lines"] = [ln.split("] ", 1)[-1] for ln in log.splitlines() if "GiB" in ln]
    text = json.dumps(rec, indent=1, ensure_ascii=False) + "\n"
    if re.search(r"fs-[0-9a-f]{32}", text + log):
        raise SystemExit("an API key is still in the recordings; not writing fixtures")
    (dst / "recordings.json").write_text(text, encoding="utf-8")
    (dst / "vllm-start.log").write_text(log, encoding="utf-8")
    for name in ("nvidia-smi-q.xml", "pci-devices.txt"):
        shutil.copy(src / name, dst / name)
    total = sum(p.stat().st_size for p in dst.iterdir())
    print(f"{dst}: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
