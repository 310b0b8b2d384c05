"""``qsplit noise``: measure quantization noise on random block masks and fit the noise model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from qsplit.cli._app import app, console
from qsplit.cli._model_options import PreprocessOption
from qsplit.model import analyze, parse_input_shape, resolve_model_spec


@app.command("noise")
def noise_command(
    model: Annotated[Path, typer.Argument(help="ONNX model file.")],
    out: Annotated[Path, typer.Option(help="Noise-model JSON to write (read by the planner).")],
    calib: Annotated[
        Path | None, typer.Option(help="Folder of calibration images (default: bundled samples).")
    ] = None,
    preprocess: PreprocessOption = None,
    samples: Annotated[int, typer.Option(help="Number of masks to measure.")] = 300,
    eval_images: Annotated[
        int,
        typer.Option(
            min=1, help="Measure noise on the first N calibration images (by name); see docs."
        ),
    ] = 2,
    top_k: Annotated[int, typer.Option("--top-k", help="Quantizable blocks: top K by MACs.")] = 12,
    link_tensors: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also sample fp16/int8 link precision of the N largest crossing tensors "
            "(0: blocks only; the planner then keeps links fp32).",
        ),
    ] = 0,
    include_head: Annotated[
        bool, typer.Option(help="Allow blocks producing a model output (a detector's decode).")
    ] = False,
    granularity: Annotated[str, typer.Option(help="'block' or 'node'.")] = "block",
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help="NAME=1x3x640x640, repeatable.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the masks and the train/test split.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="PNG of predicted against measured.")] = None,
) -> None:
    """Fit the polynomial noise model of MODEL's int8 quantization.

    Example: qsplit noise yolo11n.onnx --samples 300 --out noise.json --plot noise.png
    """
    from qsplit.assets import sample_images_dir
    from qsplit.quant import DEGENERATE_FIX, image_feeds, plot_fit, study_noise

    if granularity not in ("node", "block"):
        raise typer.BadParameter("must be 'node' or 'block'", param_hint="--granularity")
    shapes = dict(parse_input_shape(s) for s in input_shape or [])
    loaded, graph = analyze(str(model), shapes, granularity)  # type: ignore[arg-type]
    spec = resolve_model_spec(model, preprocess)
    feeds = image_feeds(loaded, calib or sample_images_dir(), preprocess=spec.preprocess)
    with Progress(console=console) as progress:
        task = progress.add_task("calibrating, then measuring masks", total=samples)
        study = study_noise(
            loaded,
            graph,
            feeds,
            samples=samples,
            top_k=top_k,
            include_head=include_head,
            eval_images=eval_images,
            seed=seed,
            calibration_cache=out.with_name(f"{out.stem}.calibration.json"),
            on_sample=lambda _: progress.advance(task),
            spec=spec,
            link_tensors=link_tensors,
        )
    study.save(out)
    if study.unquantizable:
        console.print(
            f"left out {len(study.unquantizable)} block(s) with no quantizable op: "
            + ", ".join(study.unquantizable[:8])
        )
    poly, measured = study.model, study.samples
    if plot is not None:
        plot_fit(plot, poly, measured)
    over = f"{len(poly.quantizable)} blocks" + (
        f" and {len(poly.links)} link variables" if poly.links else ""
    )
    table = Table(title=f"noise model over {over}, {len(measured)} samples")
    for column in ("degree", "fitted to", "cross-validated MSE", "chosen"):
        table.add_column(column)
    for row in poly.fit["cv_mse"]:
        chosen = (row["degree"], row["power"]) == (poly.degree, poly.power)
        target = "noise" if row["power"] == 1 else f"noise^{row['power']}"
        table.add_row(str(row["degree"]), target, f"{row['mse']:.3g}", "✓" if chosen else "")
    console.print(table)
    console.print(
        f"{len(poly.terms)} terms; R² train {poly.fit['r2_train']:.4f}, "
        f"held-out {poly.fit['r2_test']:.4f}; "
        f"calibrated in {study.calibration_s:.1f} s, {study.seconds_per_mask:.2f} s per mask; "
        f"wrote {out}"
    )
    if spec.source is not None:
        console.print(f"preprocessing and task from {spec.source}")
    if study.diagnosis.degenerate:
        console.print(
            "[yellow]warning: this noise model is degenerate: "
            + "; ".join(study.diagnosis.problems)
            + f". `qsplit plan` will refuse to quantize with it. Fix: {DEGENERATE_FIX}[/]",
            highlight=False,
        )
