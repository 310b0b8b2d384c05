"""Benchmark: every corpus model through the whole pipeline on the local three-tier testbed.

For each model of :data:`qsplit.model.corpus.MODELS` (or those named): build it into the
cache (``~/.cache/qsplit/corpus`` by default, outside the repository: some files may not be
committed), time ``analyze`` alone, then run ``qsplit demo``'s pipeline on it with one scenario
(device+edge+cloud, ``bench/corpus-three-tier.yaml``: three-tier.yaml's nodes four times
slower, so that a shared 2-core host can emulate them): testbed up → profile every node on its
agent → links → noise model → plans and baselines → deploy and run each → ``run.json``.
From the run it records the corpus table's columns (docs/models.md): ONNX nodes, blocks, weights,
analyse time, the time of one plan (analyse + plan, fp32 and int8 candidates, baselines
included), whether fp32 splits reproduce the whole model (max abs difference ≤ 1e-4 ×
output scale, on the bundled images: the fp32 configurations run on the testbed, and a
three-way split run component by component in ONNX Runtime), and the worst
predicted-vs-measured latency error.

A model that fails is recorded with the stage it failed in and the error, never skipped
silently. Usage:

    python bench/bench_corpus.py [--models resnet50 ppocr-det ...] [--out runs/corpus]
        [--json corpus.json] [--markdown table.md] [--reuse]

torchvision and YOLO11 exports need torch (the ``yolo`` extra) and a torchvision that imports.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from _output import emit_json
from qsplit.assets import sample_images_dir
from qsplit.demo import DemoConfig, ScenarioSpec, run_demo
from qsplit.model import analyze
from qsplit.model.corpus import MODELS, BuiltModel, build, corpus_model
from qsplit.partition import ComponentExtractor, components
from qsplit.plan import Bounds, load_problem, plan
from qsplit.quant import NoisePolynomial, image_feeds
from qsplit.report import RunIndex

INFRA = Path(__file__).resolve().parent / "corpus-three-tier.yaml"
EXACT = 1e-4
"""An fp32 split is exact when max |split − whole| ≤ EXACT × max |whole| (issue 14)."""

STAGES = {
    "build": "build",
    "analyze": "analyze",
    "image_feeds": "inputs",
    "reference_outputs": "inputs",
    "node_profiles": "profile",
    "measured_links": "links",
    "noise_model": "noise",
    "scenario_candidates": "plan",
    "_run_all": "run",
}
"""Innermost pipeline function of a traceback → the stage it stands for."""


@dataclass
class Row:
    name: str
    exporter: str
    weights: str
    pinned: bool = False
    onnx_nodes: int | None = None
    blocks: int | None = None
    analyse_s: float | None = None
    plan_s: float | None = None
    split_exact: bool | None = None
    split_rel_diff: float | None = None
    worst_latency_error: float | None = None
    entries_measured: int = 0
    entries_failed: list[str] = field(default_factory=list)
    failed_stage: str | None = None
    error: str | None = None
    run_dir: str | None = None
    wall_s: float = 0.0


def stage_of(exc: BaseException) -> str:
    stage = "pipeline"
    for frame in traceback.extract_tb(exc.__traceback__):
        stage = STAGES.get(frame.name, stage)
    return stage


def median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _session(model: bytes | str) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def output_scale(model: Path) -> float:
    """max |output| of the whole fp32 model over the bundled images (the runs' inputs)."""
    loaded, _ = analyze(str(model))
    session = _session(str(model))
    return max(
        float(np.abs(out).max())
        for feeds in image_feeds(loaded, sample_images_dir())
        for out in session.run(None, feeds)
    )


def three_way_split_diff(model: Path, scale: float) -> float:
    """max |split − whole| / scale for the blocks cut into three contiguous components (the
    plans often keep a model on one node, which proves nothing about splitting), each run
    alone in ONNX Runtime on the first bundled image, tensors handed on by name."""
    loaded, graph = analyze(str(model))
    size = -(-len(graph.block_names) // 3)
    nodes = ("device", "edge", "cloud")
    assignment = {b: nodes[i // size] for i, b in enumerate(graph.block_names)}
    feeds = image_feeds(loaded, sample_images_dir(), limit=1)[0]
    extractor = ComponentExtractor(loaded, graph)
    tensors = dict(feeds)
    for part in components(graph, assignment):
        session = _session(extractor.extract(part).SerializeToString())
        values = session.run(list(part.outputs), {n: tensors[n] for n in part.inputs})
        tensors.update(zip(part.outputs, values, strict=True))
    whole = _session(str(model)).run(None, feeds)
    names = [o.name for o in loaded.info.outputs]
    return (
        max(float(np.abs(tensors[n] - w).max()) for n, w in zip(names, whole, strict=True)) / scale
    )


def time_one_plan(built: BuiltModel, run_dir: Path, args: argparse.Namespace) -> float:
    """Median of analyse + one plan (w_latency 1, int8 allowed up to the full noise, baselines
    included) from the run's measured profiles, links and noise model; fp32 only when the
    noise study is degenerate (the planner refuses to quantize on it, and the demo did not)."""
    noise_path: Path | None = run_dir / "noise" / "noise.json"
    diagnosis = NoisePolynomial.load(str(noise_path)).diagnosis
    if diagnosis is not None and diagnosis.degenerate:
        noise_path = None

    def once() -> None:
        _, graph = analyze(str(built.path))
        problem = load_problem(
            graph,
            args.infra,
            [run_dir / "profiles"],
            noise_path,
            links=run_dir / "profiles" / "links.json",
            bounds=Bounds(noise_max=None, device_energy_budget_j=None, memory=True),
            w_latency=1.0,
            w_energy=0.0,
        )
        plan(problem)

    return median_s(once, args.repeat)


def bench_model(name: str, args: argparse.Namespace) -> Row:
    spec = corpus_model(name)
    row = Row(name, spec.exporter, spec.weights)
    started = time.perf_counter()
    stage = "build"
    try:
        built = build(spec, args.cache)
        row.pinned = built.pinned
        row.onnx_nodes = len(onnx.load(built.original, load_external_data=False).graph.node)
        stage = "analyze"
        _, graph = analyze(str(built.path))
        row.blocks = len(graph.blocks)
        row.analyse_s = median_s(lambda: analyze(str(built.path)), args.repeat)
        run_dir = args.out / name
        row.run_dir = str(run_dir)
        stage = "pipeline"
        if args.reuse and (run_dir / "run.json").exists():
            index = RunIndex.load(run_dir)
        else:
            index = run_demo(_config(built.path, run_dir, args))
        stage = "split"
        scale = output_scale(built.path)
        _record_entries(row, index.entries, scale, three_way_split_diff(built.path, scale))
        stage = "plan (timed)"
        row.plan_s = time_one_plan(built, run_dir, args)
    except Exception as exc:  # recorded, not hidden: the table says where and why
        row.failed_stage = stage_of(exc) if stage == "pipeline" else stage
        row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
    row.wall_s = time.perf_counter() - started
    return row


def _config(model: Path, run_dir: Path, args: argparse.Namespace) -> DemoConfig:
    return DemoConfig(
        out=run_dir,
        model=model,
        testbed_infra=args.infra,
        scenarios=(ScenarioSpec("device+edge+cloud", args.infra),),
        cache=args.cache / "pipeline",
        w_latency=(1.0,),
        noise_fractions=(0.0, 1.0),
        requests=args.requests,
        noise_samples=args.noise_samples,
        noise_top_k=args.top_k,
        profile_repetitions=args.repetitions,
    )


def _record_entries(row: Row, entries: Any, scale: float, split_diff: float) -> None:
    errors, diffs = [], [split_diff]
    for entry in entries:
        if entry.error is not None:
            row.entries_failed.append(f"{entry.label}: {entry.error.splitlines()[0][:200]}")
            continue
        measured = entry.measured
        if measured is None:
            continue
        row.entries_measured += 1
        errors.append(abs(measured.latency_s - entry.predicted.latency_s) / measured.latency_s)
        if not entry.quantized and measured.max_abs_diff is not None:
            diffs.append(measured.max_abs_diff / scale)
    row.worst_latency_error = max(errors) if errors else None
    row.split_rel_diff = max(diffs)
    row.split_exact = row.split_rel_diff <= EXACT


def markdown(rows: list[Row]) -> str:
    head = (
        "| model | exporter | ONNX nodes | blocks | weights | analyse s | plan s | split exact "
        "| predicted vs measured |\n|---|---|---:|---:|---|---:|---:|---|---|\n"
    )
    lines = []
    for r in rows:
        if r.failed_stage:
            outcome = f"**failed at {r.failed_stage}**: {r.error}"
            exact = "—"
        else:
            outcome = f"worst {r.worst_latency_error:.1%} over {r.entries_measured} runs"
            if r.entries_failed:
                outcome += f"; {len(r.entries_failed)} configuration(s) failed"
            exact = f"{'yes' if r.split_exact else 'NO'} ({r.split_rel_diff:.1e})"
        lines.append(
            f"| {r.name}{' (pinned)' if r.pinned else ''} | {r.exporter} | {_n(r.onnx_nodes)} "
            f"| {_n(r.blocks)} | {r.weights} | {_s(r.analyse_s)} | {_s(r.plan_s)} | {exact} "
            f"| {outcome} |"
        )
    return head + "\n".join(lines) + "\n"


def _n(value: int | None) -> str:
    return "—" if value is None else str(value)


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[m.name for m in MODELS])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "qsplit" / "corpus")
    parser.add_argument("--out", type=Path, default=Path("runs") / "corpus")
    parser.add_argument("--infra", type=Path, default=INFRA, help="testbed and scenario")
    parser.add_argument("--repeat", type=int, default=3, help="timed analyse/plan repetitions")
    parser.add_argument("--repetitions", type=int, default=5, help="profile repetitions")
    parser.add_argument("--noise-samples", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=6)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument(
        "--reuse", action="store_true", help="take a model's existing run.json under --out"
    )
    parser.add_argument("--json", type=Path, help="also write the result JSON here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for name in args.models:
        rows.append(bench_model(name, args))
        print(markdown(rows[-1:]), flush=True)
    table = markdown(rows)
    if args.markdown:
        args.markdown.write_text(table)
    print(table)
    emit_json(
        {
            "started": started,
            "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
            "loadavg": Path("/proc/loadavg").read_text().strip(),
            "rows": [vars(r) for r in rows],
        },
        args.json,
    )


if __name__ == "__main__":
    main()
