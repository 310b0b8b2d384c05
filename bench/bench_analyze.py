"""Benchmark: analyse + coarsen YOLO11 models, and extract every component of a random 3-node
assignment.

Prints medians over repetitions (these machines are shared and noisy). Usage:

    python bench/bench_analyze.py [MODEL.onnx ...] [--repeat 5]

Without models it uses the bundled YOLO11n, plus ``bench/models/yolo11s.onnx`` when present
(export it with ``qsplit model export yolo11s --out bench/models/yolo11s.onnx``, extra ``yolo``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qsplit.assets import bundled_model_path
from qsplit.model import build_node_graph, coarsen, load_model
from qsplit.partition import ComponentExtractor, components


def median_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench(path: Path, repeat: int) -> None:
    load_s, model = median_time(lambda: load_model(path), repeat)
    graph_s, node_graph = median_time(lambda: build_node_graph(model), repeat)
    coarsen_s, graph = median_time(lambda: coarsen(node_graph), repeat)
    rng = np.random.default_rng(0)
    assignment = {b: ("device", "edge", "cloud")[int(rng.integers(3))] for b in graph.block_names}
    split_s, parts = median_time(lambda: components(graph, assignment), repeat)
    extractor = ComponentExtractor(model, graph)
    extract_s, _ = median_time(lambda: [extractor.extract(p) for p in parts], repeat)
    print(
        f"{path.name}: {len(node_graph.blocks)} ONNX nodes → {len(graph.blocks)} blocks\n"
        f"  load+shape inference {load_s * 1e3:8.1f} ms\n"
        f"  node graph           {graph_s * 1e3:8.1f} ms\n"
        f"  coarsen              {coarsen_s * 1e3:8.1f} ms\n"
        f"  analyse total        {(load_s + graph_s + coarsen_s) * 1e3:8.1f} ms\n"
        f"  components (random 3-node assignment: {len(parts)} components) "
        f"{split_s * 1e3:.1f} ms\n"
        f"  extract all          {extract_s * 1e3:8.1f} ms "
        f"({extract_s / len(parts) * 1e3:.2f} ms per component; target < 100 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    models = args.models or [bundled_model_path("yolo11n")]
    extra = Path(__file__).parent / "models" / "yolo11s.onnx"
    if not args.models and extra.exists():
        models.append(extra)
    print(
        f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}, "
        f"medians of {args.repeat}"
    )
    for path in models:
        bench(path, args.repeat)


if __name__ == "__main__":
    main()
