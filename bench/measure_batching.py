"""Measure how each block of the bundled YOLO11n scales with the batch size, for the fleet planner.

For every block, the one-block component is extracted, its batch dimension made symbolic, and it
is timed at batch sizes 1, 2, 4 and 8 in ONNX Runtime (the agents' session settings: one
thread, no spinning), the minimum of 20 runs (as the host reference is: short runs find the quiet
moments of a shared machine; medians taken at load 8 gave fractions of 1.0 for 0.1 ms blocks).
A line ``t(b) = fixed + b·per_item`` with both parts ≥ 0 (non-negative least squares: a batch
cannot cost less than nothing, and a block slower per item at larger batches, as cache misses
make some here, gains nothing) is fitted to them and stored *relative* to ``t(1)``
(``fixed_fraction = fixed / t(1)``), so that it applies to any node's profile of the block:
the batch shape of a block does not depend on the machine's speed, its absolute time does
(docs/fleet.md, Batching).

A block whose component cannot run with a batch dimension (a Reshape that writes the batch size
1 into a constant shape) gets the fallback ``fixed_fraction = 0``: no gain from batching.

Usage: PYTHONPATH=src python bench/measure_batching.py [--out src/qsplit/fleet/yolo11n.batch.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
from scipy.optimize import nnls

from qsplit.assets import bundled_model_path
from qsplit.model import analyze
from qsplit.partition import ComponentExtractor
from qsplit.profile import SessionSettings, block_component, block_feeds, make_session

BATCHES = (1, 2, 4, 8)
RUNS = 20


def _batched(proto: onnx.ModelProto) -> onnx.ModelProto:
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    del proto.graph.value_info[:]
    return proto


def _time(session, feeds: dict[str, np.ndarray]) -> float:
    session.run(None, feeds)
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("src/qsplit/fleet/yolo11n.batch.json"))
    args = parser.parse_args()
    model, graph = analyze(str(bundled_model_path()))
    feeds = block_feeds(model, graph)
    extractor = ComponentExtractor(model, graph)
    settings = SessionSettings()
    blocks = {}
    for block in graph.blocks:
        component = block_component(graph, block.name)
        try:
            session = make_session(_batched(extractor.extract(component)), settings)
            times = [
                _time(session, {t: np.repeat(feeds[t], b, axis=0) for t in component.inputs})
                for b in BATCHES
            ]
        except Exception as exc:  # any failure means: no batch dimension
            print(f"{block.name}: no batch dimension ({type(exc).__name__}); fallback")
            blocks[block.name] = {"fixed_fraction": 0.0, "measured": False}
            continue
        (fixed, per_item), _ = nnls(np.array([[1.0, b] for b in BATCHES]), np.array(times))
        fraction = float(fixed / (fixed + per_item)) if fixed + per_item > 0 else 0.0
        timings = " ".join(f"{t * 1e3:.2f}" for t in times)
        print(f"{block.name}: {timings} ms, fraction {fraction:.3f}")
        blocks[block.name] = {
            "fixed_fraction": round(fraction, 4),
            "measured": True,
            "min_s": {str(b): round(t, 6) for b, t in zip(BATCHES, times, strict=True)},
        }
    document = {
        "kind": "batch-profile",
        "schema_version": 1,
        "model": {"sha256": graph.model.sha256},
        "batches": list(BATCHES),
        "runs": RUNS,
        "settings": settings.to_dict(),
        "blocks": blocks,
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
