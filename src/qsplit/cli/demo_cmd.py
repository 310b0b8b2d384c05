"""``qsplit demo``: the README's main command — the whole pipeline on the local testbed."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from qsplit.cli._app import app, console
from qsplit.cli._model_options import PreprocessOption
from qsplit.cli._progress import progress_bars
from qsplit.cli.report_cmd import report_command
from qsplit.errors import InputError

if TYPE_CHECKING:
    from qsplit.profile import HostReference


@app.command("demo")
def demo_command(
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/demo-<timestamp>).")
    ] = None,
    requests: Annotated[int, typer.Option(help="Measured requests per configuration.")] = 5,
    noise_samples: Annotated[int, typer.Option(help="Quantization masks measured.")] = 80,
    link_tensors: Annotated[
        int,
        typer.Option(
            help="Largest crossing tensors the noise study also sends at fp16/int8, so plans "
            "may send them so (0: links stay fp32; lz4/zstd are offered either way)."
        ),
    ] = 4,
    cache: Annotated[
        Path, typer.Option(help="Profiles and noise models are reused from here.")
    ] = Path(".qsplit/cache"),
    model: Annotated[
        Path | None, typer.Option(help="ONNX model (default: the bundled YOLO11n).")
    ] = None,
    preprocess: PreprocessOption = None,
    scenario: Annotated[
        str,
        typer.Option(
            help="`default`: every plan and baseline of each scenario; `adaptive`: a stream "
            "while the uplinks drop 10x and a node dies, static vs per-bandwidth table vs "
            "qsplit adaptive."
        ),
    ] = "default",
    schedule: Annotated[
        Path | None,
        typer.Option(help="The adaptive scenario's schedule (default: adaptive-schedule.yaml)."),
    ] = None,
    dilation: Annotated[
        float,
        typer.Option(
            help="Run every node and link this many times slower (a host too slow for the "
            "scenario; `testbed up` says when); the table divides times by it."
        ),
    ] = 1.0,
    host_reference: Annotated[
        Path | None,
        typer.Option(
            "--host-reference",
            help="This host's reference time, saved by `qsplit testbed calibrate --out FILE`, "
            "instead of measuring the host again.",
        ),
    ] = None,
) -> None:
    """Start the emulated device/edge/cloud testbed, profile every node, fit the noise model,
    plan each scenario, run every plan and baseline, and write the report.

    Example: qsplit demo --out runs/demo; qsplit demo --scenario adaptive
    """
    from qsplit.demo import DemoConfig, run_demo
    from qsplit.testbed import load_host_file

    out = out or Path("runs") / time.strftime(f"{scenario}-%Y%m%d-%H%M%S")
    host = None if host_reference is None else load_host_file(host_reference)[0]
    if scenario == "adaptive":
        _adaptive(out, cache, model, schedule, host)
        return
    if scenario != "default":
        raise InputError(
            f"unknown scenario {scenario!r}",
            field="--scenario",
            fix="use default or adaptive",
        )
    config = DemoConfig(
        out=out,
        requests=requests,
        noise_samples=noise_samples,
        link_tensors=link_tensors,
        cache=cache,
        preprocess=preprocess,
        dilation=dilation,
        host=host,
    )
    if model is not None:
        config = replace(config, model=model)
    with progress_bars() as progress:
        index = run_demo(config, progress)
    dilated = f", times ÷ {dilation:g} (dilation)" if dilation != 1 else ""
    table = Table(title=f"predicted vs measured (medians{dilated})")
    for column in ("scenario", "configuration", "latency pred.", "latency meas.", "error"):
        table.add_column(column)
    for entry in index.entries:
        if entry.measured is None:
            table.add_row(entry.scenario, entry.label, "", "", f"[red]{entry.error}[/red]")
            continue
        error = entry.predicted.latency_s / entry.measured.latency_s - 1
        table.add_row(
            entry.scenario,
            entry.label,
            f"{entry.predicted.latency_s / dilation * 1e3:.0f} ms",
            f"{entry.measured.latency_s / dilation * 1e3:.0f} ms",
            f"{error:+.1%}",
        )
    console.print(table)
    report_command(out)


def _adaptive(
    out: Path, cache: Path, model: Path | None, schedule: Path | None, host: HostReference | None
) -> None:
    from qsplit.demo import AdaptiveConfig, run_adaptive_demo

    config = AdaptiveConfig(out=out, cache=cache, host=host)
    if model is not None:
        config = replace(config, model=model)
    if schedule is not None:
        config = replace(config, schedule=schedule)
    with console.status("adaptive scenario") as status:
        outcome = run_adaptive_demo(config, on_step=status.update)
    table = Table(title="latency per phase (p50 / p95) and requests lost")
    for column in ("strategy", "phase", "requests", "lost", "p50", "p95"):
        table.add_column(column)
    for row in outcome.rows:
        table.add_row(
            row.strategy,
            row.phase,
            str(row.requests),
            f"[red]{row.lost}[/red]" if row.lost else "0",
            "–" if row.p50_s is None else f"{row.p50_s * 1e3:.0f} ms",
            "–" if row.p95_s is None else f"{row.p95_s * 1e3:.0f} ms",
        )
    console.print(table)
    console.print(f"Report written to {outcome.report}")
