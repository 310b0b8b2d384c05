"""Helpers of the Ray tests: YOLO11n's three-tier plan (the embedded Ray they share is
``tests/conftest.py``'s ``embedded_ray``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from qsplit.model import analyze
from test_runtime_cli import write_plan

THREE_TIER = Path(__file__).parents[2] / "src" / "qsplit" / "examples" / "three-tier.yaml"

__all__ = ["THREE_TIER", "three_tier_assignment", "write_plan"]


def three_tier_assignment(yolo11n_path: Path) -> dict[str, str]:
    """YOLO11n's blocks 0-5 on the device, 6-19 on the edge, the rest (the head, whose inputs
    come from several edge blocks) on the cloud."""
    names = analyze(str(yolo11n_path))[1].block_names
    nodes = ("device", "edge", "cloud")
    return {b: nodes[0 if i < 6 else 1 if i < 20 else 2] for i, b in enumerate(names)}
