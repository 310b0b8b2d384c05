"""Pareto fronts: checked against every plan of tiny problems, enumerated by brute force."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from plan_helpers import all_assignments, infra, noise, profile, random_dag

from qsplit.plan import (
    Bounds,
    Evaluation,
    LatencyModel,
    ParetoFront,
    ParetoPoint,
    PlanningProblem,
    evaluate,
    pareto_front,
    violations,
)
from qsplit.plan._pareto import dominates
from qsplit.plan._pareto_plot import plot_front

TOL = 1e-6


def tiny_problem(
    seed: int,
    blocks: int = 5,
    nodes: int = 2,
    noise_max: float = 0.08,
    latency_model: LatencyModel = "sum",
) -> PlanningProblem:
    rng = random.Random(seed)
    graph = random_dag(rng, blocks)
    names = ["dev", "edge", "cloud"][:nodes]
    speed = {"dev": 1.0, "edge": rng.uniform(1.5, 4), "cloud": rng.uniform(5, 20)}
    base = {b: rng.uniform(0.01, 0.08) for b in graph.block_names}
    chosen = graph.block_names[:3]
    profiles = {
        n: profile(
            n,
            {
                b: (base[b] / speed[n], base[b] / speed[n] * rng.uniform(0.3, 0.7))
                if b in chosen
                else (base[b] / speed[n], None)
                for b in graph.block_names
            },
        )
        for n in names
    }
    mesh = infra(
        [(n, rng.uniform(2, 30), rng.uniform(0.1, 4), 10**9) for n in names],
        [
            (a, b, rng.uniform(1e6, 2e7), rng.uniform(0.001, 0.03))
            for a in names
            for b in names
            if a != b
        ],
    )
    terms = {(b,): rng.uniform(0.01, 0.04) for b in chosen}
    terms[tuple(chosen[:2])] = -0.005
    return PlanningProblem(
        graph=graph,
        infra=mesh,
        profiles=profiles,
        noise=noise(chosen, 0.005, terms),
        bounds=Bounds(noise_max=noise_max),
        latency_model=latency_model,
    )


def every_plan(problem: PlanningProblem) -> list[Evaluation]:
    """All placements × all quantized subsets that meet the problem's bounds."""
    quantizable = problem.quantizable
    subsets = [
        combo
        for r in range(len(quantizable) + 1)
        for combo in itertools.combinations(quantizable, r)
    ]
    plans = []
    for assignment in all_assignments(problem.graph.block_names, problem.infra.node_names):
        for quantized in subsets:
            evaluation = evaluate(problem, assignment, quantized)
            if not violations(problem, evaluation):
                plans.append(evaluation)
    return plans


def _as_point(evaluation: Evaluation) -> ParetoPoint:
    return ParetoPoint(
        latency_s=evaluation.latency_s,
        energy_j=evaluation.energy_j,
        device_energy_j=evaluation.device_energy_j,
        noise=evaluation.noise,
        origin="brute-force",
        w_latency=0.0,
        noise_max=None,
        device_energy_budget_j=None,
        assignment={},
        quantized=(),
    )


@pytest.fixture(
    scope="module",
    params=[(0, 5, 2, "sum"), (1, 5, 2, "sum"), (2, 4, 3, "sum"), (3, 5, 2, "critical-path")],
    ids=str,
)
def solved(request: pytest.FixtureRequest) -> tuple[PlanningProblem, ParetoFront, list]:
    seed, blocks, nodes, latency_model = request.param
    problem = tiny_problem(seed, blocks, nodes, latency_model=latency_model)
    return problem, pareto_front(problem, points=5), every_plan(problem)


def test_points_are_priced_by_the_cost_model_and_meet_the_bounds(solved) -> None:
    problem, front, _ = solved
    assert front.points
    for point in front.points:
        evaluation = evaluate(problem, point.assignment, point.quantized)
        assert point.latency_s == evaluation.latency_s
        assert point.energy_j == evaluation.energy_j
        assert point.noise == evaluation.noise
        assert not violations(problem, evaluation)


def test_no_plan_at_all_dominates_a_point_of_the_front(solved) -> None:
    _, front, plans = solved
    for point in front.points:
        for other in plans:
            candidate = _as_point(other)
            better = (
                candidate.latency_s < point.latency_s * (1 - TOL)
                or candidate.energy_j < point.energy_j * (1 - TOL)
                or candidate.noise < point.noise - TOL
            )
            no_worse = (
                candidate.latency_s <= point.latency_s * (1 + TOL)
                and candidate.energy_j <= point.energy_j * (1 + TOL)
                and candidate.noise <= point.noise + TOL
            )
            assert not (better and no_worse), (point, other)


def test_front_points_do_not_dominate_each_other(solved) -> None:
    _, front, _ = solved
    for a, b in itertools.permutations(front.points, 2):
        assert not dominates(a, b)


def test_front_contains_the_single_objective_optima(solved) -> None:
    _, front, plans = solved
    fastest = min(p.latency_s for p in plans)
    frugal = min(p.energy_j for p in plans)
    assert min(p.latency_s for p in front.points) == pytest.approx(fastest, rel=TOL)
    assert min(p.energy_j for p in front.points) == pytest.approx(frugal, rel=TOL)
    assert min(p.noise for p in front.points) == pytest.approx(min(p.noise for p in plans))
    origins = {p.origin for p in front.points}
    assert "latency-optimum" in origins or "noise-bound" in origins


def test_front_round_trips_and_plots(solved, tmp_path: Path) -> None:
    _, front, _ = solved
    path = front.save(tmp_path / "pareto.json")
    assert ParetoFront.load(path) == front
    assert '"kind": "pareto"' in path.read_text()
    png = plot_front(front, tmp_path / "pareto.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_device_energy_sweep_respects_the_budget() -> None:
    problem = tiny_problem(4, 5, 2)
    free = pareto_front(problem, points=3)
    budget = (
        min(p.device_energy_j for p in free.points) + max(p.device_energy_j for p in free.points)
    ) / 2
    bounded = PlanningProblem(
        graph=problem.graph,
        infra=problem.infra,
        profiles=problem.profiles,
        noise=problem.noise,
        bounds=Bounds(noise_max=0.08, device_energy_budget_j=budget),
    )
    front = pareto_front(bounded, points=3)
    assert all(p.device_energy_j <= budget * (1 + TOL) for p in front.points)


def test_bounds_no_plan_meets_are_explained() -> None:
    from qsplit.errors import InfeasibleError

    problem = tiny_problem(5, 4, 2)
    impossible = PlanningProblem(
        graph=problem.graph,
        infra=problem.infra,
        profiles=problem.profiles,
        noise=problem.noise,
        bounds=Bounds(noise_max=0.08, device_energy_budget_j=1e-9),
    )
    with pytest.raises(InfeasibleError, match="least feasible"):
        pareto_front(impossible, points=2)
