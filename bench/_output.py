"""How the reliability benchmarks hand over their result: JSON on stdout, and in a file on
request, so a run can be recorded in docs/BENCHMARKS.md as it was printed."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def emit_json(result: dict[str, Any], out: Path | None) -> None:
    """Print ``result`` as indented JSON and, when ``out`` is given, write the same text there."""
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.write_text(text + "\n")


class RunContext:
    """Where and when a benchmark ran, for its record: created at its start, :meth:`fields` at
    its end (the machine is shared and noisy, so its load average before and after goes with
    every figure)."""

    def __init__(self) -> None:
        self._load_before = _loadavg()
        self._started = time.perf_counter()

    def fields(self) -> dict[str, Any]:
        return {
            "machine": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "loadavg_before": self._load_before,
            "loadavg_after": _loadavg(),
            "wall_s": time.perf_counter() - self._started,
        }


def _loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]
