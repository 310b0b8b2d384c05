"""``qsplit model export``: a YOLO11 model as ONNX, offline, ready for ``qsplit analyze``.

The command only parses and renders; :func:`qsplit.model.export.export_yolo` does the work.
It needs the optional ``yolo`` extra (torch, Ultralytics), which is imported only when the
command runs, so ``qsplit --help`` stays fast and torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from qsplit.cli._app import app, console
from qsplit.model.export import TASK_SUFFIX, ExportResult, default_output_name, export_yolo

model_app = typer.Typer(
    help="Produce models for qsplit (YOLO11 export to ONNX; needs the 'yolo' extra).",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


@model_app.command("export")
def export_command(
    model: Annotated[
        str, typer.Argument(help="YOLO11 model: yolo11n, yolo11s, yolo11m, yolo11l or yolo11x.")
    ],
    task: Annotated[str, typer.Option(help=f"Model head: {', '.join(TASK_SUFFIX)}.")] = "detect",
    imgsz: Annotated[int, typer.Option(help="Square input size in pixels (multiple of 32).")] = 640,
    weights: Annotated[
        Path | None,
        typer.Option(
            help="Trained Ultralytics .pt checkpoint. Without it the weights are random, "
            "rescaled to unit activation variance (not a trained model)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="ONNX file to write [default: <model>[-seg|-cls].onnx in the cwd]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random initialisation.")] = 0,
) -> None:
    """Export a YOLO11 model to ONNX (opset 17, batch 1, input 'images'), fully offline.

    Example: qsplit model export yolo11n --imgsz 640 --out yolo11n.onnx
    """
    target = out if out is not None else Path(default_output_name(model, task))
    with console.status(f"exporting {model} ({task}, {imgsz}x{imgsz})…"):
        result = export_yolo(model, task=task, imgsz=imgsz, weights=weights, out=target, seed=seed)
    _render(result)


def _render(result: ExportResult) -> None:
    console.print(f"[bold green]wrote[/] {result.path}", highlight=False)
    console.print(f"  model   {result.model}  task {result.task}  imgsz {result.imgsz}")
    console.print(f"  sha256  {result.sha256}", highlight=False)
    console.print(f"  weights {result.weights}", highlight=False)
    if not result.rescaled:
        return
    lo_b, med_b, _ = result.std_range("before")
    lo_a, med_a, hi_a = result.std_range("after")
    console.print(
        Panel(
            "Weights are [bold]RANDOM[/], not trained. The default initialisation is "
            "numerically dead, so every layer was rescaled to unit output variance "
            f"({len(result.layers)} layers; output std before: min {lo_b:.1e}, median "
            f"{med_b:.1e}; after: {lo_a:.2f}…{hi_a:.2f}, median {med_a:.2f}).\n"
            "Use it to study latency and quantization noise, not accuracy. "
            "Recorded in the ONNX metadata as qsplit.weights=random-rescaled.",
            title="random-rescaled weights",
            border_style="yellow",
        )
    )
