"""Baseline plans from the literature, priced by the same cost model as qsplit's own plans.

Each baseline is a plan a simpler method would choose on the same inputs; showing qsplit's plan
against them says what the joint placement-and-quantization MILP buys:

* ``<node>-only``: every block on one node (``device-only`` is local inference); the model's
  inputs still come from, and its outputs return to, the requesting device.
* ``best-split`` (Neurosurgeon): one split point in topological order, the prefix on the device
  and the suffix on one other node; best over nodes and split points.
* ``min-cut`` (DADS): the optimal two-node placement of the block DAG by minimum s–t cut,
  between the device and the best other node; any number of crossings.
* ``qpart`` (QPART): one split point as in ``best-split``, with the device's segment quantized
  block by block, greedily, under the noise bound.

Searches rank candidates with the sum-model prices of :mod:`._linear` and the problem's weights;
every returned plan is priced by :func:`evaluate` under the problem's latency model. Under the
critical-path model, the best :data:`CRITICAL_PATH_SHORTLIST` candidates by price are evaluated
and the best evaluated one is kept. Candidates that break the device-energy budget are passed
over while any candidate meets it; bounds a returned plan breaks show in :func:`violations`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from qsplit.plan._cost import Evaluation, evaluate, violations
from qsplit.plan._linear import LinearPrices, Scalarisation
from qsplit.plan._mincut import min_cut_assignment
from qsplit.plan._planfile import Payoff
from qsplit.plan._problem import PlanningProblem
from qsplit.plan._split import SplitCandidate, scan_splits, split_assignment

CRITICAL_PATH_SHORTLIST = 16
"""Split candidates re-ranked with :func:`evaluate` when latency follows the critical path."""


@dataclass(frozen=True)
class Baseline:
    """A baseline's plan and its price."""

    name: str
    assignment: Mapping[str, str]
    """Block → node."""
    quantized: frozenset[str]
    evaluation: Evaluation
    summary: str
    """One line on what was chosen, e.g. the split point."""


def compute_baselines(
    problem: PlanningProblem, payoff: Payoff | None = None
) -> dict[str, Evaluation]:
    """The baselines' evaluations by name (see :func:`baseline_plans`)."""
    return {name: b.evaluation for name, b in baseline_plans(problem, payoff).items()}


def baseline_plans(problem: PlanningProblem, payoff: Payoff | None = None) -> dict[str, Baseline]:
    """Every baseline of the module docstring, in a fixed order, with its plan.

    Candidates are ranked by the problem's weighted objective, normalised by ``payoff`` — pass
    the plan's payoff table so that baselines and plan are chosen by the same measure. Without
    one, latency and energy are normalised by the device-only plan's.
    """
    device = problem.infra.device
    graph = problem.graph
    single = {
        f"{node}-only": _priced(problem, f"{node}-only", dict.fromkeys(graph.block_names, node))
        for node in problem.infra.node_names
    }
    scale = _scalarisation(problem, payoff, single[f"{device}-only"].evaluation)
    prices = LinearPrices(problem, scale)
    others = [n for n in problem.infra.node_names if n != device]
    result = {f"{device}-only": single[f"{device}-only"]}
    result.update({name: b for name, b in single.items() if name not in result})
    if not others:
        return result
    result["best-split"] = _best_split(problem, scale, prices, others, "best-split", False)
    cuts = (
        _priced(problem, "min-cut", min_cut_assignment(prices, node), summary=f"{device} ⇄ {node}")
        for node in others
    )
    result["min-cut"] = _best(problem, scale, cuts)
    if problem.quantizable:
        result["qpart"] = _best_split(problem, scale, prices, others, "qpart", True)
    return result


def _best_split(
    problem: PlanningProblem,
    scale: Scalarisation,
    prices: LinearPrices,
    others: Iterable[str],
    name: str,
    quantize: bool,
) -> Baseline:
    candidates = [c for node in others for c in scan_splits(prices, node, quantize=quantize)]
    budget = problem.bounds.device_energy_budget_j
    if budget is not None and any(c.price.device_j <= budget for c in candidates):
        candidates = [c for c in candidates if c.price.device_j <= budget]
    candidates.sort(key=lambda c: c.price.objective)
    keep = 1 if problem.latency_model == "sum" else CRITICAL_PATH_SHORTLIST
    return _best(problem, scale, (_split_plan(problem, name, c) for c in candidates[:keep]))


def _split_plan(problem: PlanningProblem, name: str, candidate: SplitCandidate) -> Baseline:
    graph = problem.graph
    blocks = len(graph.blocks)
    where = (
        f"after {graph.block_names[candidate.position - 1]!r}" if candidate.position else "before"
    )
    summary = (
        f"{candidate.position}/{blocks} blocks on {problem.infra.device}, split {where}, "
        f"rest on {candidate.node}"
    )
    if candidate.quantized:
        summary += f"; {len(candidate.quantized)} device block(s) int8"
    assignment = split_assignment(graph, problem.infra.device, candidate.node, candidate.position)
    return _priced(problem, name, assignment, candidate.quantized, summary)


def _priced(
    problem: PlanningProblem,
    name: str,
    assignment: dict[str, str],
    quantized: frozenset[str] = frozenset(),
    summary: str = "",
) -> Baseline:
    evaluation = evaluate(problem, assignment, quantized)
    if not summary:
        counts = {n: list(assignment.values()).count(n) for n in problem.infra.node_names}
        summary = ", ".join(f"{c} on {n}" for n, c in counts.items() if c)
    return Baseline(name, assignment, frozenset(quantized), evaluation, summary)


def _best(problem: PlanningProblem, scale: Scalarisation, plans: Iterable[Baseline]) -> Baseline:
    """The cheapest plan by ``scale``, preferring plans that break no bound."""
    return min(plans, key=lambda b: (bool(violations(problem, b.evaluation)), scale(b.evaluation)))


def _scalarisation(
    problem: PlanningProblem, payoff: Payoff | None, local: Evaluation
) -> Scalarisation:
    latency_s, energy_j = (
        payoff.scales() if payoff is not None else (local.latency_s, local.energy_j)
    )
    return Scalarisation(
        per_s=problem.w_latency / max(latency_s, 1e-12),
        per_j=problem.w_energy / max(energy_j, 1e-12),
    )
