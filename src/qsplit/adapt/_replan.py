"""Re-planning under observed costs: the planning problem as the links and nodes now are, and
how much better a fresh plan is than the running one."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from qsplit.adapt._policy import AdaptPolicy
from qsplit.errors import InputError
from qsplit.infra import Infra, Link
from qsplit.plan import (
    Evaluation,
    PlanningProblem,
    Start,
    WarmModel,
    evaluate,
    plan,
    violations,
)
from qsplit.profile import ComputeProfile
from qsplit.runtime import Observed


@dataclass(frozen=True)
class Candidate:
    """A plan the adaptive session can run: where each block goes and what runs in int8."""

    assignment: Mapping[str, str]
    quantized: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
        return tuple(sorted(self.assignment.items())), tuple(sorted(self.quantized))

    @property
    def nodes(self) -> frozenset[str]:
        return frozenset(self.assignment.values())


@dataclass(frozen=True)
class Verdict:
    """A fresh plan under the observed costs, against the running one."""

    fresh: Candidate
    fresh_eval: Evaluation
    running_cost: float
    """The running plan's cost relative to the fresh plan's (≥ 1 up to solver tolerance;
    ``inf`` when it uses a node that is down or breaks a bound)."""
    running_eval: Evaluation | None


def observed_problem(
    problem: PlanningProblem,
    observed: Observed,
    policy: AdaptPolicy,
    *,
    down: Collection[str] = (),
) -> PlanningProblem:
    """``problem`` with the observed links and node speeds, and without the ``down`` nodes.

    An estimate counts once it has ``policy.min_samples`` samples and, with ``stale_s``, was
    refreshed within it; the other links and nodes keep their nominal numbers. A link bounded
    by a transfer still awaited (:attr:`LinkEstimate.bounded`) counts at once: the bound is
    proven by the wait itself, however few transfers the link has finished.
    """

    def fresh(samples: int, updated: float) -> bool:
        recent = policy.stale_s is None or observed.at - updated <= policy.stale_s
        return samples >= policy.min_samples and recent

    infra = problem.infra
    links = [
        e.link()
        for e in observed.links
        if (e.bounded or fresh(e.samples, e.updated))
        and infra.has_link(e.source, e.target)
        and math.isfinite(e.bandwidth_bytes_per_s)
    ]
    if policy.shared_uplink:
        links += _siblings(infra, links)
    profiles = dict(problem.profiles)
    for estimate in observed.nodes:
        if estimate.node in profiles and fresh(estimate.samples, estimate.updated):
            profiles[estimate.node] = scaled(profiles[estimate.node], estimate.speed_factor)
    infra = without(infra.with_links(links), down)
    profiles = {n: p for n, p in profiles.items() if n in infra.node_names}
    return dataclasses.replace(problem, infra=infra, profiles=profiles)


def _siblings(infra: Infra, observed: list[Link]) -> list[Link]:
    """The unobserved links of each node whose observed links are slower than nominal, slowed
    by the same factor (the least observed/nominal bandwidth among its links): a node's links
    share its access network, so a phone that walked away from its access point is slow to
    every destination, not only to the one it happened to send to."""
    seen = {(lk.source, lk.target) for lk in observed}
    factor: dict[str, float] = {}
    for lk in observed:
        ratio = lk.bandwidth_bytes_per_s / infra.link(lk.source, lk.target).bandwidth_bytes_per_s
        factor[lk.source] = min(factor.get(lk.source, 1.0), ratio)
    return [
        dataclasses.replace(lk, bandwidth_bytes_per_s=lk.bandwidth_bytes_per_s * factor[lk.source])
        for lk in infra.links
        if factor.get(lk.source, 1.0) < 1.0 and (lk.source, lk.target) not in seen
    ]


def scaled(profile: ComputeProfile, factor: float) -> ComputeProfile:
    """``profile`` with every block time × ``factor`` (a node observed ``factor`` × slower)."""
    return dataclasses.replace(profile, blocks=profile.blocks_scaled(factor))


def without(infra: Infra, down: Collection[str]) -> Infra:
    """``infra`` without the ``down`` nodes, their links and the pinned routes through them
    (the device is never left out: it is where requests come from)."""
    gone = set(down) - {infra.device}
    if not gone:
        return infra
    return dataclasses.replace(
        infra,
        nodes=tuple(n for n in infra.nodes if n.name not in gone),
        links=tuple(lk for lk in infra.links if not {lk.source, lk.target} & gone),
        routes=tuple(r for r in infra.routes if not {r.source, r.target, *r.via} & gone),
    )


def device_only(problem: PlanningProblem) -> Candidate:
    """Every block on the requesting device, fp32: the plan that needs no other node."""
    return Candidate(dict.fromkeys(problem.graph.block_names, problem.infra.device))


def replan(
    problem: PlanningProblem,
    running: Candidate,
    policy: AdaptPolicy,
    warm: WarmModel | None = None,
) -> Verdict:
    """Solve ``problem`` warm-started from ``running`` (when it fits) and price both; ``warm``
    (the nominal problem's built model) spares the MILP build when only speeds changed."""
    fits = running.nodes <= set(problem.infra.node_names)
    start = Start(dict(running.assignment), running.quantized) if fits else None
    try:
        result = plan(
            problem,
            with_baselines=False,
            time_limit_s=policy.solve_time_limit_s,
            start=start,
            warm=warm,
        )
    except InputError:  # the running plan quantizes what this problem cannot: start cold
        result = plan(
            problem, with_baselines=False, time_limit_s=policy.solve_time_limit_s, warm=warm
        )
    fresh = Candidate(dict(result.assignment), tuple(result.quantized))
    fresh_eval = evaluate(problem, dict(fresh.assignment), fresh.quantized)
    running_eval = price(problem, running) if fits else None
    cost = math.inf if running_eval is None else relative_cost(problem, running_eval, fresh_eval)
    return Verdict(fresh, fresh_eval, cost, running_eval)


def relative_cost(problem: PlanningProblem, plan_eval: Evaluation, fresh: Evaluation) -> float:
    """A plan's cost against the fresh plan's: the weighted sum of its latency and energy, each
    relative to the fresh plan's, over the sum of the weights (1.0: as good)."""
    weights = problem.w_latency + problem.w_energy
    latency = plan_eval.latency_s / fresh.latency_s if fresh.latency_s > 0 else 1.0
    energy = plan_eval.energy_j / fresh.energy_j if fresh.energy_j > 0 else 1.0
    return (problem.w_latency * latency + problem.w_energy * energy) / weights


def price(problem: PlanningProblem, candidate: Candidate) -> Evaluation | None:
    """The candidate under ``problem``'s costs; ``None`` when it breaks a bound or cannot be
    priced (a quantized block the problem cannot quantize)."""
    try:
        evaluation = evaluate(problem, dict(candidate.assignment), candidate.quantized)
    except InputError:
        return None
    return None if violations(problem, evaluation) else evaluation
