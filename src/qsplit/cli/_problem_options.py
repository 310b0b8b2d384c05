"""Options shared by the commands that set up a planning problem (``plan``, ``pareto``).

Declared once as annotated types so both commands read the same files the same way, with the
same help, and so a new bound or input is added in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsplit.plan import (
    LATENCY_MODELS,
    LINK_OPTIONS,
    SOLVERS,
    Bounds,
    PlanningProblem,
    load_problem,
)

GraphOption = Annotated[Path, typer.Option(help="LayerGraph JSON written by `qsplit analyze`.")]
InfraOption = Annotated[Path, typer.Option(help="Infrastructure YAML (nodes and links).")]
ProfilesOption = Annotated[
    list[Path],
    typer.Option(help="Compute profile files, or a directory of them. Repeat for several."),
]
NoiseOption = Annotated[
    Path | None, typer.Option(help="Noise model JSON; without it nothing is quantized.")
]
NoiseMaxOption = Annotated[
    float | None, typer.Option(help="Largest predicted quantization noise allowed.")
]
EnergyBudgetOption = Annotated[
    float | None, typer.Option(help="Largest energy the device may spend, joules/inference.")
]
LatencyModelOption = Annotated[
    str, typer.Option(help=f"Latency model: {' or '.join(LATENCY_MODELS)}.")
]
CompressionOption = Annotated[
    Path | None,
    typer.Option(help="Compression table JSON (lz4/zstd ratios of crossing tensors)."),
]
LinkPrecisionOption = Annotated[
    bool,
    typer.Option(
        help="Let the planner send crossing tensors at fp16/int8 and compress them, where the "
        "noise model, codec times and compression table allow it."
    ),
]
MemoryOption = Annotated[bool, typer.Option(help="Keep each node within its memory_bytes.")]
SolverOption = Annotated[str, typer.Option(help=f"MILP solver: {', '.join(SOLVERS)}.")]
TimeLimitOption = Annotated[
    float,
    typer.Option(
        help="Seconds for all solves together; when it runs out the best plan found is kept "
        "and reported as stopped at the limit, with its gap.",
        min=0.01,
    ),
]


def problem_from_options(
    graph: Path,
    infra: Path,
    profiles: list[Path],
    noise: Path | None,
    *,
    noise_max: float | None,
    energy_budget: float | None,
    memory: bool,
    w_latency: float,
    w_energy: float,
    latency_model: str,
    links: Path | None = None,
    compression: Path | None = None,
    link_precision: bool = True,
) -> PlanningProblem:
    """Check the option values and load the problem they describe."""
    if latency_model not in LATENCY_MODELS:
        raise typer.BadParameter(
            f"use one of {', '.join(LATENCY_MODELS)}", param_hint="--latency-model"
        )
    return load_problem(
        graph,
        infra,
        profiles,
        noise,
        links=links,
        bounds=Bounds(noise_max=noise_max, device_energy_budget_j=energy_budget, memory=memory),
        w_latency=w_latency,
        w_energy=w_energy,
        latency_model=latency_model,  # type: ignore[arg-type]
        compression=compression,
        link_precisions=LINK_OPTIONS if link_precision else frozenset(),
    )
