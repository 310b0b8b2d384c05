"""``qsplit plan``: solve the placement/quantization problem and show the plan beside baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
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
from qsplit.plan import TIME_LIMIT_S, Plan, Predicted, plan


@app.command("plan")
def plan_command(
    graph: GraphOption,
    infra: InfraOption,
    profiles: ProfilesOption,
    noise: NoiseOption = None,
    links: Annotated[
        Path | None,
        typer.Option(help="Measured link profile JSON; overrides the infra file's link numbers."),
    ] = None,
    noise_max: NoiseMaxOption = None,
    energy_budget: EnergyBudgetOption = None,
    w_latency: Annotated[float, typer.Option(help="Weight of normalised latency.")] = 0.5,
    w_energy: Annotated[float, typer.Option(help="Weight of normalised energy.")] = 0.5,
    latency_model: LatencyModelOption = "sum",
    memory: MemoryOption = True,
    compression: CompressionOption = None,
    link_precision: LinkPrecisionOption = True,
    solver: SolverOption = "highs",
    time_limit: TimeLimitOption = TIME_LIMIT_S,
    out: Annotated[Path, typer.Option(help="Where to write the plan JSON.")] = Path("plan.json"),
) -> None:
    """Choose where each block runs, which blocks run at int8, and how tensors cross links.

    Example: qsplit plan --graph graph.json --infra src/qsplit/examples/three-tier.yaml
    --profiles profiles/ --noise noise.json --noise-max 0.05 --energy-budget 1.5 --out plan.json
    """
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
        links=links,
        compression=compression,
        link_precision=link_precision,
    )
    with console.status("formulating…") as status:
        result = plan(
            problem,
            solver,
            time_limit_s=time_limit,
            on_solve=lambda what: status.update(f"solving: minimising {what}…"),
        )
    result.save(out)
    console.print(component_table(result))
    if result.link_modes:
        console.print(link_table(result))
    console.print(comparison_table(result))
    console.print(_solver_line(result))
    console.print(f"Plan written to [bold]{out}[/]")


def component_table(result: Plan) -> Table:
    """One row per component: where it runs, how many blocks, how many quantized."""
    quantized = set(result.quantized)
    table = Table(title=f"Plan — {len(result.components)} component(s)")
    for column, justify in [
        ("#", "right"),
        ("node", "left"),
        ("blocks", "right"),
        ("int8", "right"),
        ("first block", "left"),
        ("last block", "left"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for c in result.components:
        table.add_row(
            str(c.index),
            c.node,
            str(len(c.blocks)),
            str(sum(b in quantized for b in c.blocks)),
            c.blocks[0],
            c.blocks[-1],
        )
    return table


def link_table(result: Plan) -> Table:
    """One row per tensor that crosses links other than as computed: precision and codec."""
    table = Table(title=f"Links — {len(result.link_modes)} tensor(s) sent differently")
    for column in ("tensor", "precision", "codec"):
        table.add_column(column)
    for tensor, mode in result.link_modes.items():
        table.add_row(tensor, mode.precision, mode.codec)
    return table


def comparison_table(result: Plan) -> Table:
    """The plan's predicted cost, then every baseline with the plan's change against it."""
    table = Table(title=f"Predicted per inference ({result.latency_model} latency)")
    rows: list[tuple[str, Predicted]] = [("plan", result.predicted), *result.baselines.items()]
    table.add_column("", no_wrap=True, min_width=max(len(name) for name, _ in rows))
    for column in ("latency ms", "ΔT", "energy J", "ΔE", "device J", "noise"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, p in rows:
        is_plan = name == "plan"
        table.add_row(
            f"[bold]{name}[/]" if is_plan else name,
            f"{p.latency_s * 1e3:.2f}",
            "" if is_plan else _change(result.predicted.latency_s, p.latency_s),
            f"{p.energy_j:.4g}",
            "" if is_plan else _change(result.predicted.energy_j, p.energy_j),
            f"{p.device_energy_j:.4g}",
            f"{p.noise:.4g}",
        )
    if not result.baselines:
        table.caption = "no baselines available"
    else:
        table.caption = "ΔT, ΔE: the plan against that baseline (negative: the plan is better)"
    return table


def _change(plan_value: float, baseline: float) -> str:
    if baseline == 0:
        return "—"
    percent = (plan_value - baseline) / baseline * 100
    style = "green" if percent < 0 else "red" if percent > 0 else ""
    text = f"{percent:+.1f} %"
    return f"[{style}]{text}[/]" if style else text


def _solver_line(result: Plan) -> str:
    s = result.solver
    times = f"{s.solves} solves in {s.solve_time_s:.2f} s (model built in {s.build_time_s:.2f} s)"
    return f"solver {s.name}: {status_text(s.status, s.gap, s.time_limit_s)}, {times}"
