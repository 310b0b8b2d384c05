"""Benchmark: what link precision and compression buy the planner (predicted, not yet run).

YOLO11n on the three-tier example (device, edge, cloud; 5 MB/s uplinks), block granularity,
shipped compute profiles scaled to each node. The inputs the runtime side will measure on the
testbed are measured here on this host, so the prediction is as good as they are:

* the noise model, from a study of the top-12 blocks and the ``--links`` largest crossing
  tensors at fp16/int8 (``study_noise(link_tensors=…)``), validated on ``--held-out`` fresh
  configurations (R² and median relative error of predicted against measured noise);
* codec times of cast16/int8/lz4/zstd, by the profiler's own path
  (``qsplit.profile.measure_codec_times``: the runtime's ORT casts and (de)quantizers, the
  wire's lz4/zstd), scaled to each node by its reference time over this host's;
* compression ratios of every crossing tensor at each precision on the reference run
  (``qsplit.profile.compression_table``, what ``qsplit profile --compression`` writes).

For each noise bound and latency model it plans the least-latency plan with and without link
precision (``--no-link-precision``) and prints the predicted latencies and their ratio, the
bytes each plan sends over the device's uplinks, and the solve times. Writes JSON to ``--out``.
Usage:

    python bench/bench_link_precision.py [--samples 200] [--links 4] [--noise FILE]
        [--out bench/out/link.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from _output import emit_json
from qsplit.assets import bundled_model_path, sample_images_dir
from qsplit.infra import load_infra
from qsplit.model import analyze
from qsplit.plan import Bounds, PlanningProblem, evaluate, plan
from qsplit.profile import (
    compression_table,
    measure_codec_times,
    measure_host,
    shipped_profile,
)
from qsplit.quant import (
    NoisePolynomial,
    Quantizer,
    calibrate,
    image_feeds,
    is_link_variable,
    link_masks,
    sample_noise,
    study_noise,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "qsplit" / "examples" / "three-tier.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--links", type=int, default=4, help="crossing tensors in the study")
    parser.add_argument("--held-out", type=int, default=30)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--noise", type=Path, default=None, help="noise model: read if it exists, else written"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()

    model, graph = analyze(str(bundled_model_path("yolo11n")))
    infra = load_infra(EXAMPLE)
    feeds = image_feeds(model, sample_images_dir())
    calibration = calibrate(model, feeds)
    if args.noise is not None and args.noise.exists():
        poly, validation = NoisePolynomial.load(str(args.noise)), None
        _say(f"noise model from {args.noise}")
    else:
        poly, validation = _study(model, graph, feeds, calibration, args)
        if args.noise is not None:
            poly.save(str(args.noise))

    host = measure_host("median")
    host_codec = measure_codec_times()
    profiles = {}
    for node in infra.nodes:
        profile = shipped_profile(graph, node.name, node.reference_time_s)
        assert profile is not None
        scale = node.reference_time_s / host.time_s
        profiles[node.name] = replace(profile, codec=host_codec.scaled(scale))
    table = compression_table(model, graph, calibration)

    _say("codec times and compression ratios measured")
    everything = poly.predict([*poly.quantizable, *poly.links[1::2]])  # all blocks, links int8
    bounds = {
        "none": 0.0,
        "5 % of all-int8": 0.05 * everything,
        "25 % of all-int8": 0.25 * everything,
    }
    rows = []
    for latency_model in ("sum", "critical-path"):
        for label, bound in bounds.items():
            results = {}
            for with_links in (False, True):
                problem = PlanningProblem(
                    graph,
                    infra,
                    profiles,
                    poly,
                    Bounds(noise_max=bound),
                    w_latency=1.0,
                    w_energy=0.0,
                    latency_model=latency_model,  # type: ignore[arg-type]
                    compression=table,
                    link_precisions=frozenset({"fp16", "int8", "lz4", "zstd"})
                    if with_links
                    else frozenset(),
                )
                start = time.perf_counter()
                result = plan(problem, time_limit_s=args.time_limit, with_baselines=False)
                elapsed = time.perf_counter() - start
                ev = evaluate(problem, result.assignment, result.quantized, links=result.link_modes)
                uplink = sum(b for (s, _), b in ev.transfer_bytes.items() if s == infra.device)
                results[with_links] = {
                    "latency_s": result.predicted.latency_s,
                    "noise": result.predicted.noise,
                    "uplink_bytes": uplink,
                    "wire_bytes": sum(ev.transfer_bytes.values()),
                    "nodes": sorted(set(result.assignment.values())),
                    "quantized": len(result.quantized),
                    "link_precision": dict(result.link_precision),
                    "link_codec": dict(result.link_codec),
                    "solve_s": result.solver.solve_time_s,
                    "build_s": result.solver.build_time_s,
                    "plan_s": elapsed,
                    "status": result.solver.status,
                }
            _say(f"{latency_model}, noise bound {label}: planned")
            rows.append(
                {
                    "latency_model": latency_model,
                    "noise_bound": label,
                    "noise_max": bound,
                    "without": results[False],
                    "with": results[True],
                    "latency_ratio": results[False]["latency_s"] / results[True]["latency_s"],
                }
            )
    emit_json(
        {
            "machine": f"{platform.node()}, {os.cpu_count()} cores",
            "onnxruntime": ort.__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "noise_model": {
                "blocks": len(poly.quantizable),
                "links": len(poly.links),
                "degree": poly.degree,
                "power": poly.power,
                "terms": len(poly.terms),
                "r2_test": poly.fit["r2_test"],
                "all_int8_noise": everything,
            },
            "noise_validation": validation,
            "host_reference_s": host.time_s,
            "host_codec": host_codec.to_dict(),
            "compressed_tensors": len({k[0] for k in table.ratios}),
            "rows": rows,
        },
        args.out,
    )


def _study(model, graph, feeds, calibration, args) -> tuple[NoisePolynomial, dict]:
    """The noise study with link variables, and its check on fresh configurations."""
    started = time.perf_counter()
    study = study_noise(model, graph, feeds, samples=args.samples, link_tensors=args.links)
    study_s = time.perf_counter() - started
    _say(f"noise study: {len(study.samples)} samples in {study_s:.0f} s")
    poly = study.model
    quantizer = Quantizer(model, graph, calibration)
    _, fresh = link_masks(
        graph, poly.quantizable, _tensors(poly.links), args.samples + args.held_out, seed=99
    )
    seen = {s.blocks for s in study.samples}
    variables = study.blocks
    unseen = [
        m for m in fresh if tuple(v for v, bit in zip(variables, m, strict=True) if bit) not in seen
    ][: args.held_out]
    measured = sample_noise(quantizer, variables, unseen, feeds[:2])
    actual = np.array([s.noise for s in measured])
    predicted = np.array([poly.predict(s.blocks) for s in measured])
    residual = np.sum((predicted - actual) ** 2)
    with_links = [i for i, s in enumerate(measured) if any(map(is_link_variable, s.blocks))]
    _say(f"validated on {len(measured)} fresh configurations")
    return poly, {
        "samples": len(study.samples),
        "variables": len(variables),
        "seconds": study_s,
        "configurations": len(measured),
        "with_link_quantization": len(with_links),
        "r2": float(1 - residual / np.sum((actual - actual.mean()) ** 2)),
        "median_relative_error": float(
            np.median(np.abs(predicted - actual) / np.maximum(actual, 1e-12))
        ),
    }


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _tensors(links: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.removeprefix("link:").rpartition(":")[0] for v in links))


if __name__ == "__main__":
    main()
