"""Measure how each block of the bundled YOLO11n scales with the batch size, for the fleet planner.

For every block, the one-block component is extracted, its batch dimension made symbolic, and it
is timed at batch sizes 1, 2, 4 and 8 in ONNX Runtime (the agents' session settings: one
thread, no spinning). The first version took the minimum of 20 wall-clock runs per batch size,
one size after the other; on the shared 2-core VM at load 8-10 that gave batch 8 faster than
batch 4 in two blocks. What makes this measurement survive load:

* **CPU time of the calling thread** (``time.thread_time``), not wall time: with one intra-op
  thread ORT computes in the caller's thread, so the time the scheduler gives to other processes
  is not counted. What remains of the load is contention for caches and memory bandwidth.
* **Interleaved rounds**: each round times every batch size once (in an order rotated each
  round), so a slow stretch of the host hits all sizes of that round alike.
* **Ratios within a round, median over rounds**: ``t_r(b) / t_r(1)`` cancels what a round's
  moment does to all sizes; the median of ``--rounds`` such ratios ignores the rounds a burst
  of contention split. Each timing repeats the run until it lasts ``--min-ms`` (short blocks of
  0.1 ms are otherwise timer and dispatch noise).

A line ``r(b) = fixed + b·per_item`` with both parts ≥ 0 (non-negative least squares: a batch
cannot cost less than nothing, and a block slower per item at larger batches, as cache misses
make some, gains nothing) is fitted to the median ratios, so ``fixed_fraction = fixed / r(1)``
applies to any node's profile of the block: the batch shape of a block does not depend on the
machine's speed, its absolute time does (docs/fleet.md, Batching). The interquartile range of
the ratio at the largest batch is stored beside it as the measurement's own spread.

A block whose component cannot run with a batch dimension (a Reshape that writes the batch size
1 into a constant shape) gets the fallback ``fixed_fraction = 0``: no gain from batching.

Usage: PYTHONPATH=src python bench/measure_batching.py [--rounds 15] [--min-ms 5]
[--out src/qsplit/fleet/yolo11n.batch.json]
"""

from __future__ import annotations

import argparse
import json
import os
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


def _batched(proto: onnx.ModelProto) -> onnx.ModelProto:
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    del proto.graph.value_info[:]
    return proto


def _cpu_s(session, feeds: dict[str, np.ndarray], repeats: int) -> float:
    """CPU time of this thread per run, over ``repeats`` runs."""
    started = time.thread_time()
    for _ in range(repeats):
        session.run(None, feeds)
    return (time.thread_time() - started) / repeats


def measure_block(session, feeds: dict[int, dict[str, np.ndarray]], rounds: int, min_s: float):
    """``(times, ratios)``: per round and batch size the CPU time per run, and its ratio to the
    same round's batch-1 time; arrays of shape (rounds, len(BATCHES))."""
    for b in BATCHES:
        session.run(None, feeds[b])  # warm-up: first runs allocate
    single = _cpu_s(session, feeds[1], 3)
    repeats = max(1, int(np.ceil(min_s / max(single, 1e-6))))
    times = np.zeros((rounds, len(BATCHES)))
    for r in range(rounds):
        order = [(r + i) % len(BATCHES) for i in range(len(BATCHES))]
        for i in order:
            times[r, i] = _cpu_s(session, feeds[BATCHES[i]], repeats)
    return times, times / times[:, :1]


def fit_fraction(median_ratios: np.ndarray) -> float:
    """``fixed / (fixed + per_item)`` of the non-negative line through the median ratios."""
    (fixed, per_item), _ = nnls(np.array([[1.0, b] for b in BATCHES]), median_ratios)
    return float(fixed / (fixed + per_item)) if fixed + per_item > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("src/qsplit/fleet/yolo11n.batch.json"))
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per block")
    parser.add_argument("--min-ms", type=float, default=5.0, help="least CPU time per timing")
    args = parser.parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    model, graph = analyze(str(bundled_model_path()))
    base_feeds = block_feeds(model, graph)
    extractor = ComponentExtractor(model, graph)
    settings = SessionSettings()
    blocks = {}
    for block in graph.blocks:
        component = block_component(graph, block.name)
        feeds = {
            b: {t: np.repeat(base_feeds[t], b, axis=0) for t in component.inputs} for b in BATCHES
        }
        try:
            session = make_session(_batched(extractor.extract(component)), settings)
            times, ratios = measure_block(session, feeds, args.rounds, args.min_ms / 1e3)
        except Exception as exc:  # any failure means: no batch dimension
            print(f"{block.name}: no batch dimension ({type(exc).__name__}); fallback")
            blocks[block.name] = {"fixed_fraction": 0.0, "measured": False}
            continue
        median_ratio = np.median(ratios, axis=0)
        q1, q3 = np.quantile(ratios[:, -1], [0.25, 0.75])
        fraction = fit_fraction(median_ratio)
        shown = " ".join(f"{x:.2f}" for x in median_ratio)
        print(f"{block.name}: t(b)/t(1) {shown} (IQR at 8: {q3 - q1:.2f}), fraction {fraction:.3f}")
        blocks[block.name] = {
            "fixed_fraction": round(fraction, 4),
            "measured": True,
            "median_cpu_s": {
                str(b): round(float(t), 7)
                for b, t in zip(BATCHES, np.median(times, axis=0), strict=True)
            },
            "median_ratio": {
                str(b): round(float(x), 4) for b, x in zip(BATCHES, median_ratio, strict=True)
            },
            "ratio_iqr_at_largest": round(float(q3 - q1), 4),
        }
    document = {
        "kind": "batch-profile",
        "schema_version": 1,
        "model": {"sha256": graph.model.sha256},
        "batches": list(BATCHES),
        "statistic": "median over interleaved rounds of t(b)/t(1), thread CPU time",
        "rounds": args.rounds,
        "min_ms_per_timing": args.min_ms,
        "settings": settings.to_dict(),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": Path("/proc/loadavg").read_text().split()[:3],
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "blocks": blocks,
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
