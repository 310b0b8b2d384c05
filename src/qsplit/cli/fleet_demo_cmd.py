"""``qsplit fleet demo``: the fleet plan and its baselines run on an emulated fleet (Ray)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qsplit.cli._app import console
from qsplit.cli._progress import progress_bars
from qsplit.cli.fleet_cmd import BatchWaitOption, ModelOption, UtilisationOption, fleet_app
from qsplit.fleet import BATCH_WAIT_S, UTILISATION_MAX, AutoscalePolicy, Simulated
from qsplit.model import parse_input_shape
from qsplit.report import FLEET_TOLERANCE, FleetResult, Quantity, validation_rows
from qsplit.serve import FleetMeasurement, NodeScaling


class NodeWorkers(StrEnum):
    """What a shared node runs its batches on (:class:`qsplit.serve.NodeScaling`)."""

    in_process = "in-process"
    fixed = "fixed"
    autoscale = "autoscale"


@fleet_app.command("demo")
def demo_command(
    infra: Annotated[
        Path | None,
        typer.Argument(
            help="Infrastructure YAML with a `fleet:` section (default: the example "
            "fleet-testbed.yaml, sized for a 2-core machine).",
            exists=True,
        ),
    ] = None,
    devices: Annotated[
        int | None,
        typer.Option(
            help="Scale the fleet to this many emulated devices (classes keep shares).", min=1
        ),
    ] = None,
    duration: Annotated[
        float, typer.Option(help="Measured seconds per configuration.", min=1)
    ] = 60.0,
    warmup: Annotated[float, typer.Option(help="Seconds run before measuring.", min=0)] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the arrivals (the same for all).")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/fleet-<timestamp>).")
    ] = None,
    plot: Annotated[bool, typer.Option(help="Write the figures.")] = True,
    model: ModelOption = None,
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape",
            help="NAME=1x3x320x320: plan and serve the model at this input size (repeatable).",
        ),
    ] = None,
    utilisation_max: UtilisationOption = UTILISATION_MAX,
    batch_wait: BatchWaitOption = BATCH_WAIT_S,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Join this Ray cluster instead of an embedded Ray."),
    ] = None,
    node_workers: Annotated[
        NodeWorkers,
        typer.Option(
            help="Run each shared node's batches in its own replica (in-process), on its planned "
            "number of Serve worker replicas (fixed), or on workers Serve autoscales up to that "
            "number (autoscale).",
        ),
    ] = NodeWorkers.in_process,
    min_workers: Annotated[
        int, typer.Option(help="With --node-workers autoscale: workers a node keeps.", min=1)
    ] = 1,
) -> None:
    """Plan the fleet, run the fleet plan and the baselines (every class alone, cloud-only,
    device-only, the plan at batch 1) on emulated devices, and compare with the prediction.

    Example: qsplit fleet demo --devices 20 --duration 60 --out runs/fleet
    """
    from qsplit.demo import FleetDemoConfig, run_fleet_demo

    config = FleetDemoConfig(
        out=out or Path("runs") / time.strftime("fleet-%Y%m%d-%H%M%S"),
        devices=devices,
        duration_s=duration,
        warmup_s=warmup,
        seed=seed,
        plot=plot,
        utilisation_max=utilisation_max,
        batch_wait_s=batch_wait,
        address=ray_address,
        input_shapes=dict(parse_input_shape(s) for s in input_shape or []) or None,
        node_scaling=NodeScaling(node_workers.value, min_replicas=min_workers),
    )
    if infra is not None:
        config = replace(config, infra=infra)
    if model is not None:
        config = replace(config, model=model)
    with progress_bars() as progress:
        outcome = run_fleet_demo(config, progress)
    console.print(configuration_table(outcome.results, outcome.autoscale, outcome.simulated))
    console.print(node_table(outcome.results, outcome.measurements, outcome.simulated))
    console.print(validation_table(outcome.results))
    paths = {"ray": "Ray actors", "agent": "agents through gateways"}
    costs = ", ".join(
        f"{paths.get(r, r)} {c.median_s * 1e3:.1f} ms (spread {c.scale_s * 1e3:.1f} ms)"
        for r, c in outcome.call_cost.items()
    )
    console.print(
        "The serving path's cost per shared-component call, median (and the mean of its "
        f"exponential spread), from the calibration run, in every prediction: "
        f"{costs or 'none measured'}"
    )
    for v in outcome.versus:
        if not (math.isfinite(v.throughput_ratio) and math.isfinite(v.p95_ratio)):
            console.print(f"fleet plan vs {v.against}: not comparable (nothing completed)")
            continue
        verdict = "[green]meets[/]" if v.meets_goal() else "[red]misses[/]"
        console.print(
            f"fleet plan vs {v.against}: throughput ×{v.throughput_ratio:.2f}, "
            f"p95 ×{v.p95_ratio:.2f} ({verdict} ≥ 1.5× at equal or better p95)"
        )
    for figure in outcome.figures:
        console.print(f"Figure: {figure}")
    console.print(f"Results written to [bold]{outcome.run_dir / 'fleet-demo.json'}[/]")


def configuration_table(
    results: tuple[FleetResult, ...],
    autoscale: AutoscalePolicy | None = None,
    simulated: Mapping[str, Simulated] | None = None,
) -> Table:
    """Measured and predicted per configuration; autoscaled (``simulated``: configuration →
    the simulation its prediction came from), also the simulated spread of a window's p95."""
    simulated = simulated or {}
    table = Table(title="Configurations (measured; predicted in brackets)")
    columns = ["configuration", "offered/s", "done/s", "failed", "p50", "p95"]
    if simulated:
        columns.append("a window's p95, simulated 10 / 50 / 90 %")
    for column in columns:
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for r in results:
        band = simulated[r.label].window_band() if r.label in simulated else ()
        table.add_row(
            r.label,
            f"{r.offered_hz:.2f}",
            f"{r.throughput_hz:.2f}",
            f"[red]{r.failed}[/]" if r.failed else "0",
            _pair(r.p50_s),
            _pair(r.p95_s),
            *([" / ".join(_ms(q) for q in band) or "—"] if simulated else []),
        )
    if autoscale is not None:
        table.caption = (
            "predicted p50/p95: the fleet simulation with Serve's autoscaler on the workers "
            f"(min {autoscale.min_replicas}, up {autoscale.upscale_delay_s:g} s, down "
            f"{autoscale.downscale_delay_s:g} s, a worker starts in "
            f"{autoscale.replica_start_s:g} s), not the steady state at the planned replicas; "
            "one run measures one window"
        )
    return table


def node_table(
    results: Sequence[FleetResult],
    measurements: Sequence[FleetMeasurement],
    simulated: Mapping[str, Simulated] | None = None,
) -> Table:
    """Per configuration and shared node; ``simulated`` (configuration → the simulated
    autoscaler its prediction came from) adds the simulated mean workers in brackets."""
    table = Table(title="Shared nodes (ρ and mean wait: measured / predicted)")
    for column in (
        "configuration",
        "node",
        "replicas",
        "workers",
        "ρ",
        "wait",
        "batches (size×count)",
        "overruns",
    ):
        table.add_column(column, justify="left" if column in ("configuration", "node") else "right")
    for r, m in zip(results, measurements, strict=True):
        workers_simulated = simulated[r.label].servers if r.label in (simulated or {}) else {}
        for n in r.nodes:
            batches = " ".join(f"{b}×{k}" for b, k in sorted(n.batches.items())) or "—"
            workers = _workers(m.workers(n.node))
            if n.node in workers_simulated:
                workers += f" ({workers_simulated[n.node][0]:.1f})"
            table.add_row(
                r.label,
                n.node,
                str(n.replicas),
                workers,
                f"{n.utilisation.measured:.2f} / {n.utilisation.predicted:.2f}",
                f"{_ms(n.wait_s.measured)} / {_ms(n.wait_s.predicted)}",
                batches,
                f"{n.overruns}/{n.runs}",
            )
    return table


def _workers(counts: tuple[int, int] | None) -> str:
    """Worker replicas running over the window, fewest–most: ``in-process`` when the node had
    none."""
    if counts is None:
        return "in-process"
    low, high = counts
    return str(low) if low == high else f"{low}–{high}"


def validation_table(results: tuple[FleetResult, ...]) -> Table:
    table = Table(title=f"Queueing model: predicted vs measured (goal ±{FLEET_TOLERANCE:.0%})")
    for column in ("configuration", "latency", "predicted", "measured", "error"):
        table.add_column(
            column, justify="left" if column in ("configuration", "latency") else "right"
        )
    for label, name, q in validation_rows(results):
        error = q.error
        within = q.within()
        text = "—" if error is None else f"{error:+.1%}"
        table.add_row(
            label,
            name,
            _ms(q.predicted),
            _ms(q.measured),
            text if within is None else f"[{'green' if within else 'red'}]{text}[/]",
        )
    saturated = [r.label for r in results if r.saturated]
    if saturated:
        table.caption = f"not judged (a node predicted at ρ ≥ 1): {', '.join(saturated)}"
    return table


def _pair(q: Quantity) -> str:
    return f"{_ms(q.measured)} ({_ms(q.predicted)})"


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    return "∞" if math.isinf(seconds) else f"{seconds * 1e3:.0f} ms"
