"""``qsplit fleet plan`` and ``qsplit fleet simulate``: many devices sharing the edge and cloud."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qsplit.assets import bundled_model_path
from qsplit.cli._app import app, console
from qsplit.fleet import (
    AUTOSCALE_TOLERANCE,
    BATCH_WAIT_S,
    OBJECTIVES,
    UTILISATION_MAX,
    AutoscalePolicy,
    AutoscalePricing,
    Choice,
    FleetPlan,
    FleetProblem,
    Outcome,
    deployed_choice,
    fleet_profiles,
    load_batch_profile,
    load_fleet,
    load_fleet_plan,
    plan_fleet,
    plot_projection,
    price_autoscaling,
    utilisation,
)
from qsplit.fleet import project as project_fleet
from qsplit.model import analyze

fleet_app = typer.Typer(
    help="Plan and simulate fleets: device classes sharing edge and cloud nodes.",
    no_args_is_help=True,
)
app.add_typer(fleet_app, name="fleet")

InfraArgument = Annotated[
    Path, typer.Argument(help="Infrastructure YAML with a `fleet:` section.", exists=True)
]
ModelOption = Annotated[
    Path | None,
    typer.Option(help="ONNX model (default: the bundled YOLO11n).", exists=True, dir_okay=False),
]
ProfilesOption = Annotated[
    list[Path] | None,
    typer.Option(
        help="Compute profiles (files or directories) for nodes and classes without a "
        "reference_time; repeatable."
    ),
]
ObjectiveOption = Annotated[str, typer.Option(help=f"What to minimise: {', '.join(OBJECTIVES)}.")]
UtilisationOption = Annotated[
    float, typer.Option(help="Bound on every shared node's (and device's) utilisation.")
]
BatchProfileOption = Annotated[
    Path | None,
    typer.Option(help="Batch profile JSON (bench/measure_batching.py); default: the shipped one."),
]
BatchWaitOption = Annotated[
    float,
    typer.Option(
        "--batch-wait",
        help="Seconds a shared node's batch stays open for more requests (Serve's "
        "batch_wait_timeout_s): batches close at the batch size or this time-out.",
        min=0,
    ),
]


def _plan(
    infra: Path,
    model: Path | None,
    profiles: list[Path] | None,
    objective: str,
    w_latency: float,
    w_energy: float,
    utilisation_max: float,
    batch_profile: Path | None,
    batch_wait: float,
) -> FleetPlan:
    fleet = load_fleet(infra)
    _, graph = analyze(str(model or bundled_model_path()))
    with console.status("planning the fleet…"):
        return plan_fleet(
            fleet,
            graph,
            fleet_profiles(fleet, graph, profiles or ()),
            batching=load_batch_profile(batch_profile) if batch_profile else None,
            objective=objective,  # type: ignore[arg-type]  # checked by FleetProblem
            w_latency=w_latency,
            w_energy=w_energy,
            utilisation_max=utilisation_max,
            batch_wait_s=batch_wait,
        )


@fleet_app.command("plan")
def plan_command(
    infra: InfraArgument,
    model: ModelOption = None,
    profiles: ProfilesOption = None,
    objective: ObjectiveOption = "latency-energy",
    w_latency: Annotated[float, typer.Option(help="Weight of latency.")] = 0.5,
    w_energy: Annotated[float, typer.Option(help="Weight of energy.")] = 0.5,
    utilisation_max: UtilisationOption = UTILISATION_MAX,
    batch_profile: BatchProfileOption = None,
    batch_wait: BatchWaitOption = BATCH_WAIT_S,
    out: Annotated[Path, typer.Option(help="Where to write the fleet plan JSON.")] = Path(
        "fleet-plan.json"
    ),
) -> None:
    """Choose one plan per device class and a batch size per shared node, jointly.

    Example: qsplit fleet plan src/qsplit/examples/fleet.yaml --out fleet-plan.json
    """
    result = _plan(
        infra,
        model,
        profiles,
        objective,
        w_latency,
        w_energy,
        utilisation_max,
        batch_profile,
        batch_wait,
    )
    result.save(out)
    console.print(class_table(result))
    console.print(node_table(result.outcome))
    console.print(comparison_table(result))
    console.print(
        f"{sum(len(c) for c in result.problem.candidates.values())} candidate plans in "
        f"{result.candidates_time_s:.2f} s, MILP ({result.columns} columns, {result.rows} rows) "
        f"{result.status} in {result.solve_time_s:.2f} s"
    )
    console.print(f"Fleet plan written to [bold]{out}[/]")


def class_table(result: FleetPlan) -> Table:
    table = Table(title=f"Fleet plan — {result.fleet.device_count} devices")
    for column in (
        "class",
        "devices",
        "req/s each",
        "runtime",
        "plan",
        "ρ device",
        "mean ms",
        "p50 ms",
        "p95 ms",
        "energy J",
    ):
        table.add_column(
            column, justify="left" if column in ("class", "runtime", "plan") else "right"
        )
    for c, o in zip(result.fleet.classes, result.outcome.classes, strict=True):
        table.add_row(
            c.name,
            str(c.count),
            f"{c.rate_hz:g}",
            c.runtime,
            o.candidate,
            f"{o.device_utilisation:.2f}",
            _ms(o.latency_mean_s),
            _ms(o.latency_p50_s),
            _ms(o.latency_p95_s),
            f"{o.energy_j:.3g}",
        )
    return table


def node_table(outcome: Outcome) -> Table:
    table = Table(title="Shared nodes")
    for column in ("node", "replicas", "batch", "ρ", "wait ms", "components"):
        table.add_column(column, justify="left" if column in ("node", "components") else "right")
    for n in outcome.nodes:
        parts = [
            f"{len(g.blocks)} blocks for {'+'.join(g.classes)} ({g.rate_hz:.3g}/s)"
            for g in n.groups
        ]
        table.add_row(
            n.node,
            str(n.replicas),
            str(n.batch),
            f"{n.utilisation:.3f}",
            _ms(n.wait_s),
            "; ".join(parts) or "—",
        )
    return table


def comparison_table(result: FleetPlan) -> Table:
    table = Table(title="Fleet plan vs baselines (under the fleet's load)")
    nodes = result.fleet.shared_names
    for column in (
        "",
        "mean ms",
        "p50 ms",
        "p95 ms",
        "energy J",
        "capacity req/s",
        *(f"ρ {k}" for k in nodes),
    ):
        table.add_column(column, justify="left" if not column else "right")
    rows = [("fleet plan", result.outcome)]
    rows += [(name, outcome) for name, (_, outcome) in result.baselines.items()]
    for name, o in rows:
        rho = {n.node: n.utilisation for n in o.nodes}
        table.add_row(
            name,
            _ms(o.latency_mean_s),
            _ms(o.latency_p50_s),
            _ms(o.latency_p95_s),
            f"{o.energy_j:.3g}",
            f"{o.capacity_hz:.4g}",
            *(_rho(rho[k], result.problem.utilisation_max) for k in nodes),
        )
    table.caption = (
        f"offered {result.outcome.throughput_hz:.4g} req/s; capacity: the rate the fleet can grow "
        f"to before a node passes ρ = {result.problem.utilisation_max:g}; ∞: saturated (ρ ≥ 1)"
    )
    return table


@fleet_app.command("simulate")
def simulate_command(
    infra: InfraArgument,
    devices: Annotated[int, typer.Option(help="Largest device count to project to.", min=1)] = 1000,
    steps: Annotated[
        int, typer.Option(help="Device counts between devices/steps and devices.", min=1)
    ] = 10,
    requests: Annotated[int, typer.Option(help="Simulated requests per count.", min=1000)] = 20000,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation.")] = 0,
    model: ModelOption = None,
    profiles: ProfilesOption = None,
    objective: ObjectiveOption = "latency-energy",
    w_latency: Annotated[float, typer.Option(help="Weight of latency.")] = 0.5,
    w_energy: Annotated[float, typer.Option(help="Weight of energy.")] = 0.5,
    utilisation_max: UtilisationOption = UTILISATION_MAX,
    batch_profile: BatchProfileOption = None,
    batch_wait: BatchWaitOption = BATCH_WAIT_S,
    plan: Annotated[
        Path | None,
        typer.Option(
            help="A fleet plan from `qsplit fleet plan` to project instead of planning anew.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    plot: Annotated[Path, typer.Option(help="Where to write the plot (PNG).")] = Path(
        "fleet-projection.png"
    ),
    autoscale: Annotated[
        bool,
        typer.Option(
            "--autoscale",
            help="Also simulate the plan's shared nodes on workers Serve autoscales up to their "
            "replicas (qsplit fleet demo --node-workers autoscale), and advise the least "
            "--min-workers per node that keeps the p95.",
        ),
    ] = False,
    min_workers: Annotated[
        int, typer.Option(help="With --autoscale: workers a node keeps.", min=1)
    ] = AutoscalePolicy.min_replicas,
    upscale_delay: Annotated[
        float, typer.Option(help="With --autoscale: Serve's upscale_delay_s.", min=0)
    ] = AutoscalePolicy.upscale_delay_s,
    downscale_delay: Annotated[
        float, typer.Option(help="With --autoscale: Serve's downscale_delay_s.", min=0)
    ] = AutoscalePolicy.downscale_delay_s,
    worker_start: Annotated[
        float,
        typer.Option(
            help="With --autoscale: seconds from Serve's decision to a new worker serving.", min=0
        ),
    ] = AutoscalePolicy.replica_start_s,
    tolerance: Annotated[
        float,
        typer.Option(
            help="With --autoscale: how far above the fixed p95 the advised minimum may go.",
            min=0,
        ),
    ] = AUTOSCALE_TOLERANCE,
) -> None:
    """Plan the fleet (or take --plan), hold the plan and project it to more devices.

    Example: qsplit fleet simulate src/qsplit/examples/fleet.yaml --devices 1000 --autoscale
    """
    policy = None
    if autoscale:
        policy = AutoscalePolicy(
            min_replicas=min_workers,
            upscale_delay_s=upscale_delay,
            downscale_delay_s=downscale_delay,
            replica_start_s=worker_start,
        )
    if plan is None:
        result = _plan(
            infra,
            model,
            profiles,
            objective,
            w_latency,
            w_energy,
            utilisation_max,
            batch_profile,
            batch_wait,
        )
        problem, choice = result.problem, result.choice
    else:
        fleet = load_fleet(infra)
        _, graph = analyze(str(model or bundled_model_path()))
        problem, choice = deployed_choice(
            fleet,
            graph,
            fleet_profiles(fleet, graph, profiles or ()),
            load_fleet_plan(plan),
            batching=load_batch_profile(batch_profile) if batch_profile else None,
            utilisation_max=utilisation_max,
        )
    if policy is not None:  # refused before the projection's minutes
        for node in problem.fleet.shared_names:
            policy.check(node, problem.fleet.replicas(node))
    counts = sorted({max(1, round(devices * (i + 1) / steps)) for i in range(steps)})
    with console.status(f"simulating {len(counts)} device counts…"):
        projection = project_fleet(problem, choice, counts, requests=requests, seed=seed)
    nodes = problem.fleet.shared_names
    table = Table(title="Projection of the fleet plan (predicted / simulated)")
    for column in ("devices", *(f"ρ {k}" for k in nodes), "p50 ms", "p95 ms"):
        table.add_column(column, justify="right")
    for p in projection.points:
        sim = p.simulated
        table.add_row(
            str(p.devices),
            *(_rho(p.utilisation[k], utilisation_max) for k in nodes),
            f"{_ms(p.predicted.latency_p50_s)} / {_ms(sim.latency_p50_s) if sim else '—'}",
            f"{_ms(p.predicted.latency_p95_s)} / {_ms(sim.latency_p95_s) if sim else '—'}",
        )
    console.print(table)
    for k in nodes:
        at_bound, at_one = projection.bound[k], projection.saturation[k]
        if math.isinf(at_one):
            console.print(f"{k}: unused by this plan")
        else:
            console.print(
                f"{k}: reaches ρ = {utilisation_max:g} at {at_bound:.0f} devices, "
                f"saturates (ρ = 1) at {at_one:.0f}"
            )
    console.print(f"Plot written to [bold]{plot_projection(projection, plot, utilisation_max)}[/]")
    if policy is not None:
        with console.status("simulating the autoscaler…"):
            pricing = price_autoscaling(
                problem, choice, policy, tolerance=tolerance, requests=requests, seed=seed
            )
        console.print(autoscale_table(pricing, problem, choice))


def autoscale_table(pricing: AutoscalePricing, problem: FleetProblem, choice: Choice) -> Table:
    """Per node the workers Serve would keep and the least minimum that keeps the p95."""
    policy, tolerance = pricing.policy, pricing.tolerance
    table = Table(
        title=f"Autoscaled workers at the plan's load ({problem.fleet.device_count} devices, "
        f"simulated; min {policy.min_replicas}, up {policy.upscale_delay_s:g} s, "
        f"down {policy.downscale_delay_s:g} s, a worker starts in {policy.replica_start_s:g} s)"
    )
    for column in (
        "node",
        "replicas",
        "ρ·c",
        "workers",
        f"least min (p95 +{tolerance:.0%})",
        "p95 ms then",
        "workers then",
    ):
        table.add_column(column, justify="left" if column == "node" else "right")
    rho = utilisation(problem, choice)
    for advice in pricing.advice:
        table.add_row(
            advice.node,
            str(advice.replicas),
            f"{rho[advice.node] * advice.replicas:.2f}",
            _workers(pricing.autoscaled.servers[advice.node]),
            str(advice.min_replicas),
            _ms(advice.latency_p95_s),
            _workers(advice.servers),
        )
    fixed, scaled, advised = pricing.fixed, pricing.autoscaled, pricing.advised
    table.caption = (
        "workers: time-weighted mean (fewest–most); "
        f"fleet p95: {_ms(fixed.latency_p95_s)} ms at the planned replicas throughout (what the "
        f"plan prices); {_ms(scaled.latency_p95_s)} ms ({pricing.cost:+.0%}) autoscaled from "
        f"{policy.min_replicas}; {_ms(advised.latency_p95_s)} ms "
        f"({advised.latency_p95_s / fixed.latency_p95_s - 1:+.0%}) from every node's least min"
    )
    return table


def _workers(servers: tuple[float, int, int]) -> str:
    mean, fewest, most = servers
    return f"{mean:.2f} ({fewest}–{most})"


def _ms(seconds: float) -> str:
    return "∞" if math.isinf(seconds) else f"{seconds * 1e3:.1f}"


def _rho(value: float, bound: float) -> str:
    text = f"{value:.3f}"
    return f"[red]{text}[/]" if value >= 1 else f"[yellow]{text}[/]" if value > bound else text
