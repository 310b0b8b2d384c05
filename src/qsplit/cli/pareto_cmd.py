"""``qsplit pareto``: the latency/energy/noise trade-off as a set of non-dominated plans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from qsplit.cli._app import app, console
from qsplit.cli._format import status_text
from qsplit.cli._problem_options import (
    CompressionOption,
    EnergyBudgetOption,
    GraphOption,
    InfraOption,
    LatencyModelOption,
    LinkPrecisionOption,
    MemoryOption,
    NoiseMaxOption,
    NoiseOption,
    ProfilesOption,
    SolverOption,
    TimeLimitOption,
    problem_from_options,
)
from qsplit.plan import TIME_LIMIT_S, ParetoFront, pareto_front


@app.command("pareto")
def pareto_command(
    graph: GraphOption,
    infra: InfraOption,
    profiles: ProfilesOption,
    noise: NoiseOption = None,
    noise_max: NoiseMaxOption = None,
    energy_budget: EnergyBudgetOption = None,
    w_latency: Annotated[
        float, typer.Option(help="Latency weight used while sweeping the ε-bounds.")
    ] = 0.5,
    w_energy: Annotated[
        float, typer.Option(help="Energy weight used while sweeping the ε-bounds.")
    ] = 0.5,
    latency_model: LatencyModelOption = "sum",
    memory: MemoryOption = True,
    compression: CompressionOption = None,
    link_precision: LinkPrecisionOption = True,
    solver: SolverOption = "highs",
    time_limit: TimeLimitOption = TIME_LIMIT_S,
    points: Annotated[
        int, typer.Option(min=2, help="Steps per sweep (weights, noise bounds, energy budgets).")
    ] = 8,
    out_dir: Annotated[Path, typer.Option(help="Directory for pareto.json and pareto.png.")] = Path(
        "pareto"
    ),
) -> None:
    """Sweep objective weights and noise / device-energy bounds; keep the non-dominated plans.

    One MILP is built and re-solved about 7 × --points times. Writes pareto.json (every point
    with its latency, energy, noise, weights, bounds and placement) and pareto.png.

    Example: qsplit pareto --graph graph.json --infra src/qsplit/examples/three-tier.yaml
    --profiles profiles/ --noise noise.json --noise-max 0.1 --points 6 --out-dir pareto/
    """
    from qsplit.plan._pareto_plot import plot_front  # matplotlib, only when drawing

    problem = problem_from_options(
        graph,
        infra,
        profiles,
        noise,
        noise_max=noise_max,
        energy_budget=energy_budget,
        memory=memory,
        w_latency=w_latency,
        w_energy=w_energy,
        latency_model=latency_model,
        compression=compression,
        link_precision=link_precision,
    )
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("building the MILP…", total=None)

        def advance(done: int, planned: int) -> None:
            bar.update(task, description="solving", completed=done, total=planned)

        front = pareto_front(
            problem, points, solver=solver, time_limit_s=time_limit, progress=advance
        )
    json_path = front.save(out_dir / "pareto.json")
    png_path = plot_front(front, out_dir / "pareto.png")
    console.print(front_table(front))
    console.print(
        f"{len(front.points)} non-dominated of {front.candidates} distinct plans; "
        f"{front.solves} solves ({front.solver}) in {front.solve_time_s:.2f} s, "
        f"model built once in {front.build_time_s:.2f} s; "
        f"{status_text(front.status, front.gap, front.time_limit_s)}"
    )
    console.print(f"Written: [bold]{json_path}[/], [bold]{png_path}[/]")


def front_table(front: ParetoFront) -> Table:
    """One row per point, fastest first."""
    table = Table(title=f"Pareto front ({front.latency_model} latency, {front.granularity})")
    for column in ("#", "latency", "energy", "device energy", "noise", "found by", "placement"):
        table.add_column(column, justify="left" if column in ("found by", "placement") else "right")
    for index, p in enumerate(front.points):
        counts = ", ".join(f"{n} {c}" for n, c in p.blocks_per_node().items())
        int8 = f"; {len(p.quantized)} int8" if p.quantized else ""
        found = p.origin if p.origin != "weights" else f"ω_T = {p.w_latency:.2f}"
        table.add_row(
            str(index),
            f"{p.latency_s * 1e3:.1f} ms",
            f"{p.energy_j:.4g} J",
            f"{p.device_energy_j:.4g} J",
            f"{p.noise:.4g}",
            found,
            counts + int8,
        )
    return table
