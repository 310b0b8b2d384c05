"""The MILP against exhaustive search, on hundreds of random small instances.

For each instance every (assignment, quantization mask) is priced with :func:`evaluate`; the
planner's plan must be feasible, priced exactly as evaluate() prices it, and reach the
brute-force optimum of the same normalised objective, for both latency models. Infeasible
instances must name a binding bound and its least feasible value. The routed instances have
node pairs without a direct link (the device behind an edge, a node reachable only through
another, one-way links) and pinned ``via`` routes, so transfers are relayed over several hops.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, replace

import pytest
from plan_helpers import all_assignments, infra, noise, profile, random_dag

from qsplit.errors import InfeasibleError
from qsplit.plan import Bounds, PlanningProblem, evaluate, plan, violations
from qsplit.plan._planfile import Payoff
from qsplit.plan._planner import LEX_TOLERANCE
from qsplit.profile import Overhead

SEEDS = range(150)
TIGHT_SEEDS = range(1000, 1060)
ROUTED_SEEDS = range(2000, 2060)
SOLVE_TIMES_S: list[float] = []


@dataclass(frozen=True)
class Candidate:
    assignment: dict[str, str]
    quantized: tuple[str, ...]
    latency_s: float
    energy_j: float
    feasible: bool


def _routed_topology(rng: random.Random) -> tuple[list[str], list, list]:
    """dev ↔ edge ↔ cloud with the direct dev ↔ cloud links each present only now and then,
    sometimes a ``fog`` node hanging off the edge alone, and now and then a pinned route."""
    names = ["dev", "edge", "cloud", "fog"][: rng.choice((3, 3, 4))]
    pairs = [("dev", "edge"), ("edge", "dev"), ("edge", "cloud"), ("cloud", "edge")]
    pairs += [p for p in (("dev", "cloud"), ("cloud", "dev")) if rng.random() < 0.3]
    if "fog" in names:
        pairs += [("fog", "edge"), ("edge", "fog")]
    links = [(a, b, rng.uniform(2e5, 2e7), rng.uniform(0, 0.05)) for a, b in pairs]
    routes = []
    if ("dev", "cloud") in pairs and rng.random() < 0.5:
        routes.append(("dev", "cloud", ("edge",)))  # pinned past the direct link
    if "fog" in names and rng.random() < 0.5:
        routes.append(("fog", "dev", ("edge",)))  # the only path, pinned all the same
    return names, links, routes


def random_problem(
    seed: int, latency_model: str, tight: bool = False, routed: bool = False
) -> PlanningProblem:
    """A random instance; ``tight`` draws bounds from the low end, so many are infeasible;
    ``routed`` draws a topology where some transfers need routes through other nodes."""
    rng = random.Random(seed)
    routes: list = []
    if routed:
        names, links, routes = _routed_topology(rng)
        graph = random_dag(rng, rng.randint(2, 5 if len(names) == 3 else 4))
    else:
        n_nodes = rng.choice((2, 2, 3))
        n_blocks = rng.randint(3, 7) if n_nodes == 2 else rng.randint(2, 5)
        graph = random_dag(rng, n_blocks)
        names = ["dev", "edge", "cloud"][:n_nodes]
        links = []
        for a, b in itertools.permutations(names, 2):
            if "dev" in (a, b) or rng.random() < 0.8:
                links.append((a, b, rng.uniform(2e5, 2e7), rng.uniform(0, 0.05)))
    total_bytes = sum(t.bytes for t in graph.tensors) + graph.total_weight_bytes
    nodes = [
        (
            name,
            rng.uniform(1, 40),
            rng.uniform(0.01, 4),
            int(total_bytes * rng.uniform(0.2 if tight else 0.4, 1.5))
            if rng.random() < (0.6 if tight else 0.3)
            else 10**12,
        )
        for name in names
    ]
    blocks = graph.block_names
    candidates = rng.sample(blocks, k=min(len(blocks), rng.randint(0, 4)))
    profiles = {}
    for name in names:
        speed = rng.uniform(0.2, 3)
        times = {}
        for blk in blocks:
            fp32 = speed * rng.uniform(0.005, 0.2)
            int8 = fp32 * rng.uniform(0.3, 1.1)
            # now and then a candidate lacks an int8 timing on one node: not quantizable then
            times[blk] = (fp32, None if blk not in candidates or rng.random() < 0.05 else int8)
        profiles[name] = profile(name, times)
    if seed % 3 == 0:  # the requester's fixed costs, drawn apart so other draws do not move
        extra = random.Random(-seed)
        overhead = Overhead(
            request_s=extra.uniform(0, 0.01),
            message_s=extra.uniform(0, 0.05),
            local_bandwidth_bytes_per_s=extra.uniform(1e5, 1e7),
        )
        profiles["dev"] = replace(profiles["dev"], overhead=overhead)
    terms: dict[tuple[str, ...], float] = {}
    for blk in candidates:
        terms[(blk,)] = rng.uniform(0, 0.3)
    for pair in itertools.combinations(sorted(candidates), 2):
        if rng.random() < 0.5:
            terms[pair] = rng.uniform(-0.1, 0.2)
    if len(candidates) >= 3 and rng.random() < 0.5:
        terms[tuple(sorted(candidates)[:3])] = rng.uniform(-0.05, 0.1)
    poly = noise(candidates, rng.uniform(-0.05, 0.1), terms) if candidates else None
    if poly is not None and rng.random() < 0.5:  # a model of noise²: the bound row is squared
        poly = replace(poly, power=2)
    weights = rng.choice([(0.5, 0.5), (1.0, 0.0), (0.0, 1.0), (0.2, 0.8), (0.9, 0.3)])
    problem = PlanningProblem(
        graph,
        infra(nodes, links, routes),
        profiles,
        poly,
        Bounds(memory=True),
        w_latency=weights[0],
        w_energy=weights[1],
        latency_model=latency_model,
    )
    # Bounds drawn from the values plans actually take, so that they bind now and then.
    evaluations = [ev for *_, ev in _priced(problem)]
    bounds = Bounds(
        noise_max=_quantile(rng, [max(e.noise, 0.0) for e in evaluations], tight) if poly else None,
        device_energy_budget_j=_quantile(rng, [e.device_energy_j for e in evaluations], tight),
        memory=True,
    )
    return PlanningProblem(
        graph,
        problem.infra,
        profiles,
        poly,
        bounds,
        w_latency=weights[0],
        w_energy=weights[1],
        latency_model=latency_model,
    )


def _quantile(rng: random.Random, values: list[float], tight: bool) -> float | None:
    if rng.random() < (0.2 if tight else 0.4):
        return None
    ordered = sorted(values)
    if tight:  # at or just below the least value any plan takes
        return ordered[0] * rng.uniform(0.7, 1.0)
    return ordered[int(rng.uniform(0.0, 0.8) * (len(ordered) - 1))] * (1 + 1e-4) + 1e-9


def _priced(problem: PlanningProblem):
    blocks = problem.graph.block_names
    masks = [
        combo
        for r in range(len(problem.quantizable) + 1)
        for combo in itertools.combinations(problem.quantizable, r)
    ]
    for assignment in all_assignments(blocks, problem.infra.node_names):
        try:
            base = evaluate(problem, assignment, ())
        except Exception:  # a tensor would need a missing link
            continue
        for mask in masks:
            yield assignment, mask, base if not mask else evaluate(problem, assignment, mask)


def brute_force(problem: PlanningProblem) -> list[Candidate]:
    return [
        Candidate(a, q, ev.latency_s, ev.energy_j, not violations(problem, ev))
        for a, q, ev in _priced(problem)
    ]


def _held(values: list[float]) -> float:
    best = min(values)
    return best + LEX_TOLERANCE * max(abs(best), 1e-3)


def best_objective(
    problem: PlanningProblem, feasible: list[Candidate]
) -> tuple[float, Payoff | None]:
    t_min = min(c.latency_s for c in feasible)
    e_min = min(c.energy_j for c in feasible)
    e_at_t = min(c.energy_j for c in feasible if c.latency_s <= _held([t_min]))
    t_at_e = min(c.latency_s for c in feasible if c.energy_j <= _held([e_min]))
    if problem.w_energy == 0:
        return e_at_t, None
    if problem.w_latency == 0:
        return t_at_e, None
    payoff = Payoff(t_min, t_at_e, e_min, e_at_t)
    value = min(
        payoff.objective(c.latency_s, c.energy_j, problem.w_latency, problem.w_energy)
        for c in feasible
    )
    return value, payoff


@pytest.mark.parametrize("latency_model", ["sum", "critical-path"])
@pytest.mark.parametrize("seed", SEEDS)
def test_milp_matches_brute_force(seed: int, latency_model: str) -> None:
    _check_against_brute_force(random_problem(seed, latency_model))


@pytest.mark.parametrize("latency_model", ["sum", "critical-path"])
@pytest.mark.parametrize("seed", ROUTED_SEEDS)
def test_milp_matches_brute_force_on_routed_topologies(seed: int, latency_model: str) -> None:
    problem = random_problem(seed, latency_model, routed=True)
    assert not problem.infra.has_link("dev", "cloud") or problem.infra.has_link("cloud", "edge")
    _check_against_brute_force(problem)


@pytest.mark.parametrize("seed", TIGHT_SEEDS)
def test_tight_bounds_explained_or_met(seed: int) -> None:
    _check_against_brute_force(random_problem(seed, "sum", tight=True))


def _check_against_brute_force(problem: PlanningProblem) -> None:
    candidates = brute_force(problem)
    feasible = [c for c in candidates if c.feasible]
    if not feasible:
        with pytest.raises(InfeasibleError) as info:
            plan(problem, mip_gap=1e-9, with_baselines=False)
        _check_explanation(problem, candidates, info.value)
        return

    started = time.perf_counter()
    result = plan(problem, mip_gap=1e-9, with_baselines=False)
    SOLVE_TIMES_S.append(time.perf_counter() - started)
    ev = evaluate(problem, result.assignment, result.quantized)
    assert not violations(problem, ev)
    assert result.predicted.latency_s == ev.latency_s
    assert result.predicted.energy_j == ev.energy_j
    assert result.predicted.device_energy_j == ev.device_energy_j
    assert result.predicted.noise == ev.noise
    assert result.solver.status == "optimal"

    expected, payoff = best_objective(problem, feasible)
    if payoff is None:
        # Single objective: optimum of it, ties broken on the other objective.
        primary = "latency_s" if problem.w_energy == 0 else "energy_j"
        best = min(getattr(c, primary) for c in feasible)
        assert getattr(ev, primary) == pytest.approx(best, rel=1e-6, abs=1e-9)
        other = ev.energy_j if primary == "latency_s" else ev.latency_s
        assert other == pytest.approx(expected, rel=1e-5, abs=1e-9)
    else:
        assert vars(result.payoff) == pytest.approx(vars(payoff), rel=1e-6)
        assert result.objective == pytest.approx(expected, abs=1e-6)


def _check_explanation(problem, candidates: list[Candidate], error: InfeasibleError) -> None:
    evaluations = {(tuple(sorted(c.assignment.items())), c.quantized): c for c in candidates}
    bounds = problem.bounds
    order = []
    if bounds.noise_max is not None and problem.quantizable:
        order.append("noise")
    if bounds.device_energy_budget_j is not None:
        order.append("device-energy")
    order += [f"memory:{n}" for n in problem.infra.node_names]
    expected = None
    for name in order:
        values = []
        for *_, ev in _priced(problem):
            others = [v.constraint for v in violations(problem, ev) if v.constraint != name]
            if not others:
                values.append(_quantity(ev, name))
        if values:
            expected = (name, min(values))
            break
    assert evaluations  # the instance was priced
    if expected is None:
        assert error.constraint in (None, "links")
    else:
        assert error.constraint == expected[0]
        assert error.least_feasible == pytest.approx(expected[1], rel=1e-6, abs=1e-9)


def _quantity(ev, name: str) -> float:
    if name == "noise":
        return ev.noise
    if name == "device-energy":
        return ev.device_energy_j
    return ev.memory_bytes[name.removeprefix("memory:")]
