"""The demo's configurations: for each scenario, the MILP's plans over a grid of weights and
noise bounds, and the baselines, each priced by the cost model. Plans may send crossing tensors
at fp16/int8 and compress them with lz4/zstd where that pays (the compression table and the
noise study's link variables make those choices available); baselines keep links at fp32."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path

from qsplit.demo._config import DemoConfig, ScenarioSpec
from qsplit.infra import load_infra
from qsplit.model import LayerGraph
from qsplit.plan import (
    Bounds,
    LinkMode,
    Payoff,
    Plan,
    PlanningProblem,
    baseline_plans,
    evaluate,
    load_problem,
    plan,
)
from qsplit.profile import CompressionTable, LinkProfile
from qsplit.quant import NoisePolynomial
from qsplit.report import Costs, Entry, EntryKind

Configuration = tuple[
    frozenset[tuple[str, str]],
    frozenset[str],
    frozenset[tuple[str, str]],
    frozenset[tuple[str, str]],
]


def configuration(entry: Entry) -> Configuration:
    """What a run depends on (placement, quantized blocks, link precisions and codecs):
    identical ones are run once."""
    return (
        frozenset(entry.assignment.items()),
        frozenset(entry.quantized),
        frozenset(entry.link_precision.items()),
        frozenset(entry.link_codec.items()),
    )


def scenario_candidates(
    config: DemoConfig,
    spec: ScenarioSpec,
    graph: LayerGraph,
    profiles: dict[str, Path],
    links: LinkProfile,
    noise: NoisePolynomial,
    compression: CompressionTable,
    run_dir: Path,
    advance: Callable[[], None],
) -> list[Entry]:
    """Plans for every (latency weight, noise bound) of ``config`` and the baselines, for the
    nodes of ``spec``; configurations found twice are listed once, under their first label."""
    infra = load_infra(spec.infra)
    nodes = set(infra.node_names)
    problem_links = LinkProfile(
        links=tuple(m for m in links.links if {m.source, m.target} <= nodes)
    )
    full_noise = noise.predict(noise.quantizable)
    found: dict[Configuration, Entry] = {}
    last: tuple[PlanningProblem, Payoff | None] | None = None
    fractions = config.noise_fractions
    if noise.diagnosis is not None and noise.diagnosis.degenerate:
        # The planner refuses to quantize on a noise study that measured nothing: fp32 only.
        fractions = tuple(dict.fromkeys(f if f == 0 else 0.0 for f in fractions))
    for w_latency in config.w_latency:
        for fraction in fractions:
            noise_max = fraction * full_noise
            problem = load_problem(
                graph,
                infra,
                [profiles[n] for n in infra.node_names],
                noise if fraction > 0 else None,
                links=problem_links,
                bounds=Bounds(noise_max=noise_max if fraction > 0 else None),
                w_latency=w_latency,
                w_energy=1.0 - w_latency,
                latency_model=config.latency_model,
                compression=compression,
            )
            result = plan(problem, with_baselines=False)
            name = f"w{w_latency:g}-n{fraction:g}"
            plan_file = Path("plans") / _slug(spec.name) / f"{name}.json"
            result.save(run_dir / plan_file)
            label = f"qsplit w_lat={w_latency:g}, " + (
                f"noise ≤ {noise_max:.3g}" if fraction > 0 else "fp32"
            )
            candidate = replace(
                _candidate(
                    spec.name,
                    "plan",
                    label,
                    problem,
                    result.assignment,
                    result.quantized,
                    result.link_modes,
                ),
                plan=str(plan_file),
                w_latency=w_latency,
                noise_max=noise_max if fraction > 0 else None,
            )
            found.setdefault(configuration(candidate), candidate)
            last = (problem, result.payoff)
            advance()
    if last is not None:
        problem, payoff = last
        for name, baseline in baseline_plans(problem, payoff).items():
            candidate = _candidate(
                spec.name, "baseline", name, problem, baseline.assignment, baseline.quantized
            )
            found.setdefault(configuration(candidate), candidate)
    return list(found.values())


def _candidate(
    scenario: str,
    kind: EntryKind,
    label: str,
    problem: PlanningProblem,
    assignment: Mapping[str, str],
    quantized: Collection[str],
    links: Mapping[str, LinkMode] | None = None,
) -> Entry:
    """``links`` (tensor → mode) as the plan chose them; ``None``: every tensor at fp32,
    uncompressed (the baselines)."""
    chosen = dict(assignment)
    blocks = tuple(b for b in problem.graph.block_names if b in set(quantized))
    evaluation = evaluate(problem, chosen, blocks, links=links)
    link_precision, link_codec = Plan.split_links(evaluation.links)
    return Entry(
        id=f"{_slug(scenario)}/{_slug(label)}",
        scenario=scenario,
        kind=kind,
        label=label,
        assignment=chosen,
        quantized=blocks,
        noise=evaluation.noise,
        predicted=Costs(evaluation.latency_s, evaluation.energy_j, evaluation.device_energy_j),
        measured=None,
        link_precision=link_precision,
        link_codec=link_codec,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")
