"""Link precision and compression in the MILP against exhaustive search.

Small random instances get codec times on every node, a compression table and noise variables
for link precision; every (assignment, quantization mask, link modes of the crossing tensors) is
priced with :func:`evaluate`. The planner's plan must be feasible, priced as evaluate() prices
it, carry no link mode on a tensor that does not cross, and reach the brute-force optimum.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
from plan_helpers import all_assignments, noise
from test_brute_force import best_objective, random_problem

from qsplit.errors import InfeasibleError
from qsplit.plan import FP32_LINK, Bounds, LinkMode, PlanningProblem, evaluate, plan, violations
from qsplit.profile import CodecCost, CodecTimes, CompressionTable
from qsplit.quant import is_link_variable, link_candidates, link_variable

SEEDS = range(3000, 3040)


def _codec(rng: random.Random) -> CodecTimes:
    def cost() -> CodecCost:
        return CodecCost(rng.uniform(0, 1e-3), rng.uniform(1e-10, 2e-8))

    operations = ("cast16", "int8", "lz4", "zstd")
    return CodecTimes({op: cost() for op in operations}, {op: cost() for op in operations})


def link_problem(seed: int, latency_model: str) -> PlanningProblem:
    """A random instance of the block-level brute force with link modes on top."""
    rng = random.Random(seed)
    base = random_problem(seed, latency_model)
    while len(base.graph.blocks) * len(base.infra.nodes) > 12:  # keep the search small
        seed += 10_000
        base = random_problem(seed, latency_model)
    graph = base.graph
    candidates = link_candidates(graph)
    ratios = {
        (t, p, c): rng.uniform(0.2, 1.05)
        for t in candidates
        for p in ("fp32", "fp16", "int8")
        for c in ("lz4", "zstd")
        if rng.random() < 0.8
    }
    profiles = {n: replace(p, codec=_codec(rng)) for n, p in base.profiles.items()}
    links = tuple(
        link_variable(t, p) for t in candidates for p in ("fp16", "int8") if rng.random() < 0.8
    )
    old = base.noise
    quantizable = old.quantizable if old is not None else ()
    terms = {term.blocks: term.coefficient for term in old.terms} if old is not None else {}
    for v in links:
        terms[(v,)] = rng.uniform(0.0, 0.2) if v.endswith("int8") else rng.uniform(0.0, 0.02)
    if len(links) >= 2 and rng.random() < 0.5:
        terms[tuple(rng.sample(links, 2))] = rng.uniform(-0.05, 0.1)
    if links and quantizable and rng.random() < 0.5:
        terms[(quantizable[0], links[0])] = rng.uniform(-0.05, 0.1)
    poly = replace(noise(quantizable, old.intercept if old else 0.0, terms), links=links)
    options = frozenset(rng.sample(["fp16", "int8", "lz4", "zstd"], rng.choice((1, 2, 2, 3))))
    problem = PlanningProblem(
        graph,
        base.infra,
        profiles,
        poly,
        Bounds(),
        w_latency=base.w_latency,
        w_energy=base.w_energy,
        latency_model=latency_model,
        compression=CompressionTable(graph.model.sha256, ratios),
        link_precisions=options,
    )
    evaluations = [ev for *_, ev in _priced(problem)]
    noise_values = sorted(max(e.noise, 0.0) for e in evaluations)
    energies = sorted(e.device_energy_j for e in evaluations)
    bounds = Bounds(
        noise_max=noise_values[int(rng.uniform(0.0, 0.6) * (len(noise_values) - 1))] * (1 + 1e-4)
        + 1e-9
        if rng.random() < 0.7
        else None,
        device_energy_budget_j=energies[int(rng.uniform(0, 0.8) * (len(energies) - 1))] * (1 + 1e-4)
        if rng.random() < 0.3
        else None,
    )
    return replace(problem, bounds=bounds)


def _priced(problem: PlanningProblem):
    """Every plan with its link modes, priced."""
    graph = problem.graph
    masks = [
        combo
        for r in range(len(problem.quantizable) + 1)
        for combo in itertools.combinations(problem.quantizable, r)
    ]
    for assignment in all_assignments(graph.block_names, problem.infra.node_names):
        try:
            evaluate(problem, assignment, ())
        except Exception:  # a tensor would need a missing link
            continue
        crossing = [
            t
            for t in graph.tensors
            if len(problem.link_modes(t.name)) > 1
            and any(assignment[c] != assignment[t.producer] for c in t.consumers)
        ]
        for mask in masks:
            choices = [
                [
                    m
                    for m in problem.link_modes(t.name)
                    if m.precision == "fp32" or t.producer not in mask
                ]
                for t in crossing
            ]
            for modes in itertools.product(*choices):
                links = {t.name: m for t, m in zip(crossing, modes, strict=True)}
                yield assignment, mask, links, evaluate(problem, assignment, mask, links=links)


@pytest.mark.parametrize("latency_model", ["sum", "critical-path"])
@pytest.mark.parametrize("seed", SEEDS)
def test_milp_with_link_modes_matches_brute_force(seed: int, latency_model: str) -> None:
    problem = link_problem(seed, latency_model)
    priced = list(_priced(problem))
    feasible = [
        _Candidate(ev.latency_s, ev.energy_j) for *_, ev in priced if not violations(problem, ev)
    ]
    if not feasible:
        with pytest.raises(InfeasibleError):
            plan(problem, mip_gap=1e-9, with_baselines=False)
        return
    result = plan(problem, mip_gap=1e-9, with_baselines=False)
    ev = evaluate(problem, result.assignment, result.quantized, links=result.link_modes)
    assert not violations(problem, ev)
    assert result.predicted.latency_s == ev.latency_s
    assert result.predicted.energy_j == ev.energy_j
    assert result.predicted.noise == ev.noise
    for tensor in result.link_modes:  # a link mode only where the tensor crosses
        t = problem.graph.tensor_by_name[tensor]
        assert any(result.assignment[c] != result.assignment[t.producer] for c in t.consumers)
    expected, payoff = best_objective(problem, feasible)
    if payoff is None:
        primary = "latency_s" if problem.w_energy == 0 else "energy_j"
        best = min(getattr(c, primary) for c in feasible)
        assert getattr(ev, primary) == pytest.approx(best, rel=1e-6, abs=1e-9)
    else:
        assert result.objective == pytest.approx(expected, abs=1e-6)


class _Candidate:
    def __init__(self, latency_s: float, energy_j: float) -> None:
        self.latency_s, self.energy_j = latency_s, energy_j


def test_some_instances_choose_link_modes() -> None:
    """The search space is not trivially fp32: a good share of optima send something lossy
    or compressed."""
    chosen = 0
    for seed in list(SEEDS)[:15]:
        problem = replace(link_problem(seed, "sum"), bounds=Bounds())
        result = plan(problem, mip_gap=1e-9, with_baselines=False)
        chosen += bool(result.link_modes)
    assert chosen >= 3


def test_link_modes_follow_the_inputs() -> None:
    problem = link_problem(3001, "sum")
    t = next(iter(link_candidates(problem.graph)))
    modes = problem.link_modes(t)
    assert modes[0] == FP32_LINK
    off = replace(problem, link_precisions=frozenset())
    assert off.link_modes(t) == (FP32_LINK,)
    no_table = replace(problem, compression=None)
    assert all(m.codec == "none" for m in no_table.link_modes(t))
    old = problem.noise
    assert old is not None
    blocks_only = tuple(t for t in old.terms if not any(map(is_link_variable, t.blocks)))
    no_links = replace(problem, noise=replace(old, links=(), terms=blocks_only))
    assert all(m.precision == "fp32" for m in no_links.link_modes(t))
    no_codec = replace(
        problem, profiles={n: replace(p, codec=None) for n, p in problem.profiles.items()}
    )
    assert no_codec.link_modes(t) == (FP32_LINK,)
    assert LinkMode("int8", "lz4") not in replace(
        problem, link_precisions=frozenset({"int8"})
    ).link_modes(t)
