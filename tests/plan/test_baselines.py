"""Baselines: priced by the cost model, and optimal within their plan family (brute force)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from plan_helpers import all_assignments, infra, noise, profile, random_dag

from qsplit.plan import (
    Bounds,
    Evaluation,
    LatencyModel,
    Payoff,
    PlanningProblem,
    baseline_plans,
    compute_baselines,
    evaluate,
    violations,
)
from qsplit.plan._split import split_assignment
from qsplit.profile import Overhead

PAYOFF = Payoff(latency_min_s=0.0, latency_max_s=1.0, energy_min_j=0.0, energy_max_j=5.0)
"""Scales of 1 s and 5 J; with the default weights 0.5/0.5 the objective is T/2 + E/10."""


def objective(evaluation: Evaluation) -> float:
    return PAYOFF.objective(evaluation.latency_s, evaluation.energy_j, 0.5, 0.5)


def random_problem(
    seed: int,
    blocks: int,
    nodes: int = 3,
    *,
    quantizable: int = 0,
    noise_max: float | None = None,
    latency_model: LatencyModel = "sum",
    behind_edge: bool = False,
    overhead: bool = False,
) -> PlanningProblem:
    """A random DAG on a device plus ``nodes - 1`` faster, hungrier nodes on a full mesh, or,
    ``behind_edge``, without the direct device ↔ cloud links (the cloud is reached via the edge);
    with ``overhead``, the device's profile has fixed costs large enough to move the optimum."""
    rng = random.Random(seed)
    graph = random_dag(rng, blocks)
    names = ["dev", "edge", "cloud"][:nodes]
    speed = {"dev": 1.0, "edge": rng.uniform(2, 4), "cloud": rng.uniform(8, 30)}
    base = {b: rng.uniform(0.005, 0.05) for b in graph.block_names}
    chosen = graph.block_names[:quantizable]
    profiles = {
        n: profile(
            n,
            {
                b: (base[b] / speed[n], base[b] / speed[n] * 0.4 if b in chosen else None)
                for b in graph.block_names
            },
        )
        for n in names
    }
    if overhead:
        extra = random.Random(-seed)
        fixed = Overhead(
            request_s=extra.uniform(0, 0.01),
            message_s=extra.uniform(0.005, 0.05),
            local_bandwidth_bytes_per_s=extra.uniform(1e5, 1e7),
        )
        profiles["dev"] = replace(profiles["dev"], overhead=fixed)
    mesh = infra(
        [(n, rng.uniform(2, 30), rng.uniform(0.1, 4), 10**9) for n in names],
        [
            (a, b, rng.uniform(1e6, 5e7), rng.uniform(0.001, 0.05))
            for a in names
            for b in names
            if a != b and not (behind_edge and {a, b} == {"dev", "cloud"})
        ],
    )
    poly = None
    if chosen:
        poly = noise(chosen, 0.01, {(b,): rng.uniform(0.01, 0.05) for b in chosen})
    return PlanningProblem(
        graph=graph,
        infra=mesh,
        profiles=profiles,
        noise=poly,
        bounds=Bounds(noise_max=noise_max),
        latency_model=latency_model,
    )


@pytest.mark.parametrize("latency_model", ["sum", "critical-path"])
@pytest.mark.parametrize("seed", range(4))
def test_every_baseline_is_priced_by_the_cost_model(seed: int, latency_model: str) -> None:
    problem = random_problem(seed, 12, quantizable=4, noise_max=0.06, latency_model=latency_model)
    plans = baseline_plans(problem)
    assert list(plans)[:4] == ["dev-only", "edge-only", "cloud-only", "best-split"]
    assert {"min-cut", "qpart"} <= set(plans)
    for baseline in plans.values():
        assert baseline.evaluation == evaluate(problem, baseline.assignment, baseline.quantized)
    assert compute_baselines(problem) == {n: b.evaluation for n, b in plans.items()}


def test_device_only_runs_everything_on_the_device() -> None:
    problem = random_problem(1, 10)
    local = baseline_plans(problem)["dev-only"]
    assert set(local.assignment.values()) == {"dev"}
    assert local.quantized == frozenset()
    assert local.evaluation.transfer_s == {}
    assert local.evaluation.device_energy_j == pytest.approx(local.evaluation.energy_j)


def test_single_node_baselines_still_exchange_inputs_and_outputs_with_the_device() -> None:
    problem = random_problem(2, 10)
    remote = baseline_plans(problem)["cloud-only"]
    assert set(remote.assignment.values()) == {"cloud"}
    assert ("dev", "cloud") in remote.evaluation.transfer_s
    assert ("cloud", "dev") in remote.evaluation.transfer_s


@pytest.mark.parametrize("overhead", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_best_split_matches_brute_force_over_split_points(seed: int, overhead: bool) -> None:
    problem = random_problem(seed, 14, overhead=overhead)
    graph = problem.graph
    brute = min(
        objective(evaluate(problem, split_assignment(graph, "dev", node, position)))
        for node in ("edge", "cloud")
        for position in range(len(graph.blocks) + 1)
    )
    found = baseline_plans(problem, PAYOFF)["best-split"]
    assert objective(found.evaluation) == pytest.approx(brute, rel=1e-9)


@pytest.mark.parametrize("overhead", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_min_cut_is_optimal_on_two_nodes(seed: int, overhead: bool) -> None:
    problem = random_problem(seed, 9, nodes=2, overhead=overhead)
    blocks = problem.graph.block_names
    brute = min(objective(evaluate(problem, a)) for a in all_assignments(blocks, ["dev", "edge"]))
    found = baseline_plans(problem, PAYOFF)["min-cut"]
    assert objective(found.evaluation) == pytest.approx(brute, rel=1e-9)
    assert objective(found.evaluation) <= objective(
        baseline_plans(problem, PAYOFF)["best-split"].evaluation
    )


@pytest.mark.parametrize("seed", range(4))
def test_qpart_quantizes_the_device_segment_within_the_noise_bound(seed: int) -> None:
    problem = random_problem(seed, 12, quantizable=5, noise_max=0.07)
    plans = baseline_plans(problem, PAYOFF)
    qpart = plans["qpart"]
    assert qpart.evaluation.noise <= 0.07 + 1e-12
    assert all(qpart.assignment[b] == "dev" for b in qpart.quantized)
    assert not violations(problem, qpart.evaluation)
    assert objective(qpart.evaluation) <= objective(plans["best-split"].evaluation) + 1e-12


def test_device_energy_budget_steers_the_split_when_it_can() -> None:
    problem = random_problem(3, 12)
    free = baseline_plans(problem, PAYOFF)["best-split"]
    budget = free.evaluation.device_energy_j * 0.5
    bounded = PlanningProblem(
        graph=problem.graph,
        infra=problem.infra,
        profiles=problem.profiles,
        bounds=Bounds(device_energy_budget_j=budget),
    )
    chosen = baseline_plans(bounded, PAYOFF)["best-split"]
    meets = [
        split_assignment(problem.graph, "dev", node, p)
        for node in ("edge", "cloud")
        for p in range(len(problem.graph.blocks) + 1)
        if evaluate(problem, split_assignment(problem.graph, "dev", node, p)).device_energy_j
        <= budget
    ]
    if meets:
        assert chosen.evaluation.device_energy_j <= budget * (1 + 1e-9)


def test_a_lone_device_has_only_the_local_baseline() -> None:
    problem = random_problem(4, 6, nodes=1, quantizable=2, noise_max=0.05)
    assert list(baseline_plans(problem)) == ["dev-only"]


@pytest.mark.parametrize("latency_model", ["sum", "critical-path"])
@pytest.mark.parametrize("seed", range(3))
def test_baselines_on_a_device_behind_an_edge_route_through_it(
    seed: int, latency_model: LatencyModel
) -> None:
    problem = random_problem(
        seed, 10, quantizable=3, noise_max=0.05, latency_model=latency_model, behind_edge=True
    )
    assert not problem.infra.has_link("dev", "cloud")
    plans = baseline_plans(problem, PAYOFF)
    assert list(plans) == [
        "dev-only", "edge-only", "cloud-only", "best-split", "min-cut", "qpart"
    ]  # fmt: skip
    for baseline in plans.values():
        assert baseline.evaluation == evaluate(problem, baseline.assignment, baseline.quantized)
    cloud = plans["cloud-only"].evaluation
    assert set(cloud.transfer_s) == {
        ("dev", "edge"), ("edge", "cloud"), ("cloud", "edge"), ("edge", "dev")
    }  # fmt: skip
    # the edge relays: its transmit power pays the edge → cloud hop, the device only its own
    dev = problem.infra.node("dev")
    assert cloud.device_energy_j == pytest.approx(
        dev.compute_power_w * cloud.compute_s["dev"]
        + dev.transmit_power_w * cloud.transfer_s[("dev", "edge")]
    )
    if latency_model == "sum":
        graph = problem.graph
        splits = [
            objective(evaluate(problem, split_assignment(graph, "dev", node, position)))
            for node in ("edge", "cloud")
            for position in range(len(graph.blocks) + 1)
        ]
        assert objective(plans["best-split"].evaluation) == pytest.approx(min(splits), rel=1e-9)
        pairs = [
            objective(evaluate(problem, a))
            for node in ("edge", "cloud")
            for a in all_assignments(graph.block_names, ["dev", node])
        ]
        assert objective(plans["min-cut"].evaluation) == pytest.approx(min(pairs), rel=1e-9)
