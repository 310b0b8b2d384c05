"""``qsplit run --adapt``: the options that turn a run into an adaptive one, and the session
they open (docs/adapt.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qsplit.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from qsplit.adapt import AdaptiveSession
    from qsplit.infra import Infra
    from qsplit.model import Preprocess
    from qsplit.runtime import InferResult

AdaptOpt = Annotated[
    bool,
    typer.Option(
        "--adapt",
        help="Re-plan while running: switch plans when observed links or node speeds make "
        "another plan better, fail over when a node stops answering (needs --graph and "
        "--profiles, the plan's inputs).",
    ),
]
GraphOpt = Annotated[
    Path | None,
    typer.Option("--graph", help="With --adapt: the LayerGraph JSON the plan was made from."),
]
NoiseOpt = Annotated[
    Path | None,
    typer.Option("--noise", help="With --adapt: the plan's noise model (else no block in int8)."),
]
MarginOpt = Annotated[
    float,
    typer.Option(
        "--replan-margin",
        help="Switch when the running plan costs this fraction more than a fresh plan.",
        min=0.0,
    ),
]
HysteresisOpt = Annotated[
    float,
    typer.Option(
        "--replan-hysteresis",
        help="Extra fraction needed to switch back to the plan last left.",
        min=0.0,
    ),
]
MinIntervalOpt = Annotated[
    float,
    typer.Option("--replan-min-interval", help="Least seconds between two switches.", min=0.0),
]
CheckIntervalOpt = Annotated[
    float,
    typer.Option("--replan-check-interval", help="Seconds between re-plans.", min=0.01),
]


def adaptive_session(
    plan: Path,
    network: Infra,
    model: Path,
    *,
    graph: Path | None,
    profiles: list[Path] | None,
    noise: Path | None,
    margin: float,
    hysteresis: float,
    min_interval_s: float,
    check_interval_s: float,
    token: str | None,
    timeout_s: float,
    calibration: Path | None,
    preprocess: Preprocess | None,
    curve_key: Path | None,
) -> AdaptiveSession:
    """The adaptive session for ``qsplit run --adapt``: the plan's problem rebuilt from its
    inputs, with the plan's weights, bounds and latency model."""
    from qsplit.adapt import AdaptiveSession, AdaptPolicy, Candidate
    from qsplit.plan import Plan, load_problem

    if graph is None or not profiles:
        raise InputError(
            "--adapt re-plans, so it needs the plan's inputs",
            field="--graph" if graph is None else "--profiles",
            fix="pass --graph layergraph.json and --profiles DIR (those `qsplit plan` was given)",
        )
    made = Plan.load(plan)
    problem = load_problem(
        graph,
        network,
        profiles,
        noise,
        bounds=made.bounds,
        w_latency=made.w_latency,
        w_energy=made.w_energy,
        latency_model=made.latency_model,
    )
    policy = AdaptPolicy(
        margin=margin,
        hysteresis=hysteresis,
        min_interval_s=min_interval_s,
        check_interval_s=check_interval_s,
    )
    return AdaptiveSession(
        problem,
        Candidate(made.assignment, made.quantized),
        model,
        infra=network,
        policy=policy,
        token=token,
        timeout_s=timeout_s,
        calibration=calibration,
        preprocess=preprocess,
        curve_key=curve_key,
    )


def adaptive_results(
    session: AdaptiveSession,
    feeds: Iterable[Mapping[str, np.ndarray]],
    *,
    max_in_flight: int,
    timeout_s: float,
    plan_ids: list[str],
) -> Iterator[InferResult]:
    """The stream's results as a plain session gives them; each one's plan id is appended to
    ``plan_ids``."""
    for result in session.stream(feeds, max_in_flight=max_in_flight, timeout_s=timeout_s):
        plan_ids.append(result.plan_id)
        yield result.result


def adapt_meta(session: AdaptiveSession, plan_ids: list[str]) -> dict[str, Any]:
    """What ``--adapt`` adds to the results file: the policy, every plan by id, the
    decisions with the costs behind them, and which plan answered each request."""
    return {
        "policy": dataclasses.asdict(session.policy),
        "plans": {
            plan_id: {"assignment": dict(c.assignment), "quantized": list(c.quantized)}
            for plan_id, c in session.plans.items()
        },
        "decisions": [d.to_dict() for d in session.decisions],
        "request_plans": plan_ids,
    }
