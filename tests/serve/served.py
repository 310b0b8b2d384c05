"""Helpers of the Ray tests: YOLO11n's three-tier plan, and an embedded Ray offering the
three-tier nodes' resources."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from qsplit.model import analyze
from qsplit.serve import start_embedded
from test_runtime_cli import write_plan

THREE_TIER = Path(__file__).parents[2] / "src" / "qsplit" / "examples" / "three-tier.yaml"

__all__ = ["THREE_TIER", "embedded_ray", "three_tier_assignment", "write_plan"]


def three_tier_assignment(yolo11n_path: Path) -> dict[str, str]:
    """YOLO11n's blocks 0-5 on the device, 6-19 on the edge, the rest (the head, whose inputs
    come from several edge blocks) on the cloud."""
    names = analyze(str(yolo11n_path))[1].block_names
    nodes = ("device", "edge", "cloud")
    return {b: nodes[0 if i < 6 else 1 if i < 20 else 2] for i, b in enumerate(names)}


@contextmanager
def embedded_ray() -> Iterator[str]:
    """An embedded Ray offering the three-tier nodes' resources, for sessions to attach to (they
    leave it running); yields its address. Serve and Ray are stopped on the way out."""
    import ray
    from ray import serve

    start_embedded(["device", "edge", "cloud"])
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        serve.shutdown()
        ray.shutdown()
