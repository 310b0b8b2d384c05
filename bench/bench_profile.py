"""Benchmark: whole YOLO11n compute profile (fp32 + int8, every block), and the additivity study.

Target: the profile in ≤ 60 s. Additivity: over random components (contiguous runs and convex
connected sets of YOLO11n's blocks), the sum of the blocks' latencies vs the component's, median
and worst absolute % error: raw, with the fitted per-run overhead, and (for comparison, same
runs) with medians over rounds instead of minima. Usage:

    python bench/bench_profile.py [--components 40] [--repetitions 20] [--rounds 4] [--burst 5]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import onnxruntime as ort

from qsplit.assets import bundled_model_path
from qsplit.model import analyze
from qsplit.profile import block_feeds, measure_additivity, profile_compute, random_components


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=40)
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--burst", type=int, default=5, help="timed runs per burst")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"onnxruntime {ort.__version__}, load average {os.getloadavg()}")
    model, graph = analyze(str(bundled_model_path("yolo11n")))
    start = time.perf_counter()
    profile = profile_compute(model, graph, node="bench", repetitions=args.repetitions)
    wall = time.perf_counter() - start
    fp32 = sum(t.fp32_s for t in profile.blocks.values())
    int8 = sum(t.int8_s or t.fp32_s for t in profile.blocks.values())
    quantized = sum(t.int8_s is not None for t in profile.blocks.values())
    print(
        f"profile: {len(profile.blocks)} blocks ({quantized} with int8), "
        f"{args.repetitions} repetitions, wall {wall:.1f} s (target ≤ 60 s)"
    )
    print(f"  Σ fp32 {fp32 * 1e3:.1f} ms, Σ int8 (fp32 where none) {int8 * 1e3:.1f} ms")

    print(f"load average before additivity: {os.getloadavg()}")
    sets = random_components(graph, args.components, seed=1)
    start = time.perf_counter()
    report = measure_additivity(
        model,
        graph,
        sets,
        block_feeds(model, graph),
        repetitions=args.burst,
        rounds=args.rounds,
    )
    summary = report.to_dict()
    print(f"additivity: {len(sets)} components, {time.perf_counter() - start:.0f} s")
    for kind in ("raw", "corrected", "raw_median_of_rounds"):
        s = summary[kind]
        print(
            f"  {kind:20s} median {s['median_abs_error'] * 100:.1f} %, "
            f"worst {s['max_abs_error'] * 100:.1f} %"
        )
    print(
        f"  fitted per-run overhead {report.overhead_s * 1e6:.1f} µs, "
        f"mean signed raw error {summary['mean_signed_error_raw'] * 100:+.1f} %"
    )
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "profile_wall_s": wall,
                    "profile": profile.to_dict(),
                    "additivity": summary,
                    "samples": [
                        {
                            "blocks": list(s.blocks),
                            "measured_rounds_s": s.measured_rounds_s,
                            "block_rounds_s": s.block_rounds_s,
                        }
                        for s in report.samples
                    ],
                },
                out,
                indent=1,
            )


if __name__ == "__main__":
    main()
