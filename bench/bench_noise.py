"""Benchmark: noise sampling speed and fit quality on the bundled YOLO11n (LSUV-rescaled weights).

Prints the seconds per mask (median over chunks of masks, after calibration), and the held-out
R² of the regressor ``fit_noise`` chooses against the number of samples it was fitted on, each
row on the masks ``qsplit noise --samples N`` would measure. The held-out set is fixed (random
masks never used for fitting), so rows are comparable. Also measures the
trade-off of evaluating on fewer images: how well noise on ``--eval-images`` images predicts
noise on all calibration images, mask by mask. Writes bench/out/noise.json and noise.png.
Usage:

    python bench/bench_noise.py [--sizes 25 50 100 200 300] [--test 100] [--compare 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from qsplit.assets import bundled_model_path, sample_images_dir
from qsplit.model import analyze
from qsplit.quant import (
    NoisePolynomial,
    NoiseSample,
    Quantizer,
    calibrate,
    candidate_blocks,
    fit_noise,
    image_feeds,
    random_masks,
    sample_noise,
)

OUT = Path(__file__).resolve().parents[1] / "bench" / "out"
CHUNK = 20
"""Masks per timing chunk; seconds per mask is the median over chunks."""


def r2(poly: NoisePolynomial, samples: Sequence[NoiseSample]) -> float:
    measured = np.array([s.noise for s in samples])
    predicted = np.array([poly.predict(s.blocks) for s in samples])
    return float(
        1 - np.sum((measured - predicted) ** 2) / np.sum((measured - measured.mean()) ** 2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200, 300])
    parser.add_argument("--test", type=int, default=100, help="held-out masks")
    parser.add_argument("--eval-images", type=int, default=2)
    parser.add_argument("--compare", type=int, default=40, help="masks for the image trade-off")
    parser.add_argument("--top-k", type=int, default=12)
    args = parser.parse_args()

    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    load_before = os.getloadavg()
    print(f"onnxruntime {ort.__version__}, load average {load_before}")
    model, graph = analyze(str(bundled_model_path("yolo11n")))
    feeds = image_feeds(model, sample_images_dir())
    start = time.perf_counter()
    quantizer = Quantizer(model, graph, calibrate(model, feeds))
    setup_s = time.perf_counter() - start
    print(f"calibration + one full quantization: {setup_s:.1f} s; {quantizer.settings}")
    blocks = candidate_blocks(graph, quantizer, args.top_k)
    masks = random_masks(len(blocks), max(args.sizes) + args.test, seed=0)
    evaluation = feeds[: args.eval_images]

    samples: list[NoiseSample] = []
    chunk_s: list[float] = []
    chunk_cpu_s: list[float] = []
    for i in range(0, len(masks), CHUNK):
        start, cpu = time.perf_counter(), time.process_time()
        samples += sample_noise(quantizer, blocks, masks[i : i + CHUNK], evaluation)
        chunk_s.append((time.perf_counter() - start) / len(masks[i : i + CHUNK]))
        chunk_cpu_s.append((time.process_time() - cpu) / len(masks[i : i + CHUNK]))
    per_mask = statistics.median(chunk_s)
    print(
        f"{len(samples)} masks on {len(evaluation)} image(s): {per_mask:.3f} s per mask "
        f"(median of {len(chunk_s)} chunks, min {min(chunk_s):.3f}, max {max(chunk_s):.3f}; "
        f"target ≤ 0.3 s); CPU {statistics.median(chunk_cpu_s):.3f} s per mask over all cores"
    )

    test = samples[max(args.sizes) :]
    by_mask = {_mask(s, blocks): s for s in samples}
    rows = []
    print("samples  degree  power  terms  R² held-out (fixed set)  R² internal split")
    for n in args.sizes:
        # The design `qsplit noise --samples n` would measure: all its masks are in the pool,
        # because the pool is drawn from the same random sequence.
        design = [by_mask[m] for m in random_masks(len(blocks), n, seed=0)]
        assert not set(map(id, design)) & set(map(id, test)), "a held-out mask was fitted"
        poly = fit_noise(design, blocks, model.info.sha256)
        rows.append(
            {
                "samples": n,
                "degree": poly.degree,
                "power": poly.power,
                "terms": len(poly.terms),
                "r2_heldout": r2(poly, test),
            }
        )
        print(
            f"{n:7d}  {poly.degree:6d}  {poly.power:5d}  {len(poly.terms):5d}  "
            f"{rows[-1]['r2_heldout']:23.4f}  {poly.fit['r2_test']:.4f}"
        )

    # Trade-off: the same masks on every calibration image.
    compared = samples[2 : 2 + args.compare]
    everything = sample_noise(quantizer, blocks, [_mask(s, blocks) for s in compared], feeds)
    few = np.array([s.noise for s in compared])
    full = np.array([s.noise for s in everything])
    corr = float(np.corrcoef(few, full)[0, 1])
    print(
        f"noise on {len(evaluation)} vs {len(feeds)} images over {len(compared)} masks: "
        f"Pearson r {corr:.4f}, ratio of means {few.mean() / full.mean():.3f}"
    )
    print(f"load average after: {os.getloadavg()}")

    best = fit_noise(samples[: max(args.sizes)], blocks, model.info.sha256)
    OUT.mkdir(parents=True, exist_ok=True)
    _plot(OUT / "noise.png", rows, best, test)
    result = {
        "machine": platform.node(),
        "cores": os.cpu_count(),
        "load_average_before_after": [load_before, os.getloadavg()],
        "onnxruntime": ort.__version__,
        "quantizer": quantizer.settings,
        "eval_images": len(evaluation),
        "setup_s": setup_s,
        "seconds_per_mask_median": per_mask,
        "seconds_per_mask_chunks": chunk_s,
        "cpu_seconds_per_mask_median": statistics.median(chunk_cpu_s),
        "r2_by_samples": rows,
        "eval_images_tradeoff": {"masks": len(compared), "pearson_r": corr},
    }
    (OUT / "noise.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT / 'noise.json'} and {OUT / 'noise.png'}")


def _mask(sample: NoiseSample, blocks: Sequence[str]) -> tuple[int, ...]:
    return tuple(int(b in sample.blocks) for b in blocks)


def _plot(
    path: Path, rows: list[dict[str, float]], poly: NoisePolynomial, test: Sequence[NoiseSample]
) -> None:
    figure = Figure(figsize=(9, 4))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    left.plot([r["samples"] for r in rows], [r["r2_heldout"] for r in rows], marker="o")
    left.axhline(0.99, color="grey", linewidth=0.8, linestyle="--")
    left.set_xlabel("samples fitted")
    left.set_ylabel("held-out R²")
    left.set_title("YOLO11n, fixed held-out masks")
    measured = [s.noise for s in test]
    right.scatter(measured, [poly.predict(s.blocks) for s in test], s=8)
    top = max(measured)
    right.plot([0, top], [0, top], color="grey", linewidth=0.8)
    right.set_xlabel("measured noise (mean |fp32 − int8|)")
    right.set_ylabel("predicted")
    right.set_title(f"{rows[-1]['samples']} samples, degree {poly.degree}, power {poly.power}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
