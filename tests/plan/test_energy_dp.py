"""The two-node walk (plan/_energy_dp.py) against exhaustive search on small random instances.

The walk claims the least energy (or mix of sum latency and energy) of any plan meeting the
noise bound, the device-energy budget and a lexicographic hold if given (memory left out), with
a plan of that cost; below a cutoff it claims only the cutoff. Exhaustive search prices every
assignment and quantization mask with evaluate(); the masks ride in the walk's labels, so
every case exercises them.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from test_brute_force import brute_force, random_problem

from qsplit.plan import PlanningProblem, evaluate
from qsplit.plan._energy_dp import least_cost

SEEDS = [s for s in range(100) if random.Random(s).choice((2, 2, 3)) == 2][:60]
"""Seeds whose instance has two nodes (random_problem's first draw)."""

SUM_SEEDS = [s for s in SEEDS if random_problem(s, "sum").overhead.message_s == 0]
"""Of those, the instances without per-message costs, where latency is a sum over blocks and
the walk can hold it."""


def _int8_never_dearer(problem: PlanningProblem) -> PlanningProblem:
    """The instance with every int8 time capped at its fp32 time (the walk's precondition)."""
    profiles = {
        node: replace(
            p,
            blocks={
                b: t if t.int8_s is None else replace(t, int8_s=min(t.int8_s, t.fp32_s))
                for b, t in p.blocks.items()
            },
        )
        for node, p in problem.profiles.items()
    }
    return replace(problem, profiles=profiles)


def _brute_least(problem: PlanningProblem, per_s: float = 0.0, per_j: float = 1.0) -> float:
    """Exhaustive least ``per_s·T + per_j·E`` under the noise bound and budget, memory ignored."""
    loose = replace(problem, bounds=replace(problem.bounds, memory=False))
    feasible = [c for c in brute_force(loose) if c.feasible]
    return min((per_s * c.latency_s + per_j * c.energy_j for c in feasible), default=math.inf)


@pytest.mark.parametrize("seed", SEEDS)
def test_walk_finds_the_least_energy(seed: int) -> None:
    problem = _int8_never_dearer(random_problem(seed, "sum"))
    assert len(problem.infra.nodes) == 2
    expected = _brute_least(problem)
    found = least_cost(problem, math.inf)
    assert found is not None
    if math.isinf(expected):
        assert math.isinf(found.bound) and found.assignment is None
        return
    assert found.bound == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert found.assignment is not None
    priced = evaluate(problem, found.assignment, found.quantized)
    assert priced.energy_j == pytest.approx(expected, rel=1e-9, abs=1e-12)
    budget, noise_max = problem.bounds.device_energy_budget_j, problem.bounds.noise_max
    assert budget is None or priced.device_energy_j <= budget * (1 + 1e-6) + 1e-6
    assert noise_max is None or priced.noise <= noise_max + 1e-6


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_cutoff_bounds_without_a_plan(seed: int) -> None:
    problem = _int8_never_dearer(random_problem(seed, "sum"))
    expected = _brute_least(problem)
    if math.isinf(expected) or expected <= 0:
        pytest.skip("no feasible plan, or one of no energy")
    below = least_cost(problem, expected * (1 - 1e-3))
    assert below is not None
    assert below.bound == expected * (1 - 1e-3) and below.assignment is None
    above = least_cost(problem, expected * 1.01)
    assert above is not None and above.bound == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS[:30])
def test_walk_finds_the_least_weighted_cost(seed: int) -> None:
    problem = _int8_never_dearer(random_problem(seed, "sum"))
    per_s, per_j = 3.0, 0.5
    found = least_cost(problem, math.inf, latency_weight=per_s, energy_weight=per_j)
    if problem.overhead.message_s > 0:  # per-message costs are not a sum over blocks
        assert found is None
        return
    expected = _brute_least(problem, per_s, per_j)
    assert found is not None
    assert found.bound == pytest.approx(expected, rel=1e-9, abs=1e-12)
    if not math.isinf(expected):
        assert found.assignment is not None
        priced = evaluate(problem, found.assignment, found.quantized)
        cost = per_s * priced.latency_s + per_j * priced.energy_j
        assert cost == pytest.approx(expected, rel=1e-9)


def test_not_applicable() -> None:
    three = next(
        random_problem(s, "sum") for s in range(100) if random.Random(s).choice((2, 2, 3)) == 3
    )
    assert len(three.infra.nodes) == 3
    assert least_cost(three, math.inf) is None
    slower = next(
        p
        for p in (random_problem(s, "sum") for s in SEEDS)
        if any(
            t.int8_s is not None and t.int8_s > t.fp32_s
            for b in p.quantizable
            for t in (prof.blocks[b] for prof in p.profiles.values())
        )
    )
    assert least_cost(slower, math.inf) is None
    critical = _int8_never_dearer(random_problem(SEEDS[1], "critical-path"))
    assert least_cost(critical, math.inf) is not None  # energy does not depend on the model
    assert least_cost(critical, math.inf, latency_weight=1.0) is None


@pytest.mark.parametrize("seed", SUM_SEEDS[:15])
@pytest.mark.parametrize("first", ["latency", "energy"])
def test_walk_finds_the_second_objective_under_a_hold(seed: int, first: str) -> None:
    """Least energy with latency held at its least (and the other way round), as the payoff
    table's second solves ask, against exhaustive search; the hold keeps the planner's slack."""
    problem = _int8_never_dearer(random_problem(seed, "sum"))
    loose = replace(problem, bounds=replace(problem.bounds, memory=False))
    feasible = [c for c in brute_force(loose) if c.feasible]
    if not feasible:
        pytest.skip("no feasible plan")

    def value(c, objective: str) -> float:
        return c.latency_s if objective == "latency" else c.energy_j

    best = min(value(c, first) for c in feasible)
    limit = best + 1e-6 * max(abs(best), 1e-3)
    second = "energy" if first == "latency" else "latency"
    expected = min(value(c, second) for c in feasible if value(c, first) <= limit)
    hold = (float(first == "latency"), float(first == "energy"), limit)
    found = least_cost(
        problem,
        math.inf,
        latency_weight=float(second == "latency"),
        energy_weight=float(second == "energy"),
        hold=hold,
    )
    assert found is not None and found.assignment is not None
    assert found.bound == pytest.approx(expected, rel=1e-9, abs=1e-12)
    priced = evaluate(problem, found.assignment, found.quantized)
    assert value(priced, second) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert value(priced, first) <= limit * (1 + 1e-12)


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_a_hold_below_every_plan_leaves_none(seed: int) -> None:
    problem = _int8_never_dearer(random_problem(seed, "sum"))
    found = least_cost(problem, math.inf, hold=(0.0, 1.0, 0.0))
    assert found is not None
    assert math.isinf(found.bound) and found.assignment is None


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_shared_steps_and_no_thinned_pass_change_nothing(seed: int) -> None:
    """The planner keeps the walk's moves between its solves and skips the thinned pass when
    its cutoff is close: both only save time."""
    problem = _int8_never_dearer(random_problem(seed, "sum"))
    alone = least_cost(problem, math.inf)
    steps: dict = {}
    first = least_cost(problem, math.inf, steps=steps, thin_first=False)
    assert steps  # the moves were kept
    again = least_cost(problem, math.inf, steps=steps)
    assert alone is not None and first is not None and again is not None
    assert first.bound == pytest.approx(alone.bound, rel=1e-12)
    assert again.bound == pytest.approx(alone.bound, rel=1e-12)
    for found in (first, again):
        if found.assignment is not None:  # a plan of that cost (ties may pick another)
            priced = evaluate(problem, found.assignment, found.quantized)
            assert priced.energy_j == pytest.approx(alone.bound, rel=1e-9)


def test_gives_up_when_its_time_runs_out() -> None:
    """A walk out of time declines (the planner's solver then runs within the time limit)."""
    problem = _int8_never_dearer(random_problem(SEEDS[0], "sum"))
    assert least_cost(problem, math.inf, time_limit_s=1e-9) is None
    assert least_cost(problem, math.inf, time_limit_s=60.0) is not None
