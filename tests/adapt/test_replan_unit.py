"""Re-planning without agents: the observed problem, the relative cost and the policy's
checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "plan"))

from plan_helpers import graph, infra, profile

from qsplit.adapt import (
    AdaptPolicy,
    Candidate,
    observed_problem,
    replan,
)
from qsplit.errors import InputError
from qsplit.plan import PlanningProblem
from qsplit.runtime import LinkEstimate, NodeEstimate, Observed

GRAPH = graph(
    {"a": 1000, "b": 1000},
    [("x", None, ["a"], 400_000, False), ("h", "a", ["b"], 4000, False), ("y", "b", [], 40, True)],
)
INFRA = infra(
    [("dev", 3.0, 3.0, 10**9), ("edge", 6.0, 2.0, 10**9), ("cloud", 9.0, 1.0, 10**9)],
    [
        (s, t, 10e6, 0.001)
        for s, t in [("dev", "edge"), ("edge", "dev"), ("dev", "cloud"), ("cloud", "dev")]
    ]
    + [("edge", "cloud", 10e6, 0.001), ("cloud", "edge", 10e6, 0.001)],
)
TIMES = {"dev": 0.1, "edge": 0.01, "cloud": 0.02}
PROBLEM = PlanningProblem(
    GRAPH,
    INFRA,
    {n: profile(n, {"a": (t, None), "b": (t, None)}) for n, t in TIMES.items()},
    w_latency=1.0,
    w_energy=0.0,
)
POLICY = AdaptPolicy(min_samples=3, stale_s=10.0)
EDGE = Candidate({"a": "edge", "b": "edge"})


def _observed(*links: tuple[str, str, float, int, float], nodes=()) -> Observed:
    return Observed(
        links=tuple(LinkEstimate(s, t, bw, 0.001, n, None, at) for s, t, bw, n, at in links),
        nodes=tuple(NodeEstimate(n, f, k, None, at) for n, f, k, at in nodes),
        at=100.0,
    )


def test_the_nominal_problem_keeps_the_running_plan() -> None:
    verdict = replan(observed_problem(PROBLEM, _observed(), POLICY), EDGE, POLICY)
    assert verdict.fresh == EDGE and verdict.running_cost == pytest.approx(1.0)


def test_a_slow_uplink_makes_the_running_plan_cost_more_than_a_fresh_one() -> None:
    slow = _observed(("dev", "edge", 0.1e6, 5, 99.0), ("dev", "cloud", 0.1e6, 5, 99.0))
    problem = observed_problem(PROBLEM, slow, POLICY)
    assert problem.infra.link("dev", "edge").bandwidth_bytes_per_s == 0.1e6
    verdict = replan(problem, EDGE, POLICY)
    assert verdict.fresh == Candidate({"a": "dev", "b": "edge"})  # only the small h crosses
    expected = verdict.running_eval.latency_s / verdict.fresh_eval.latency_s
    assert verdict.running_cost == pytest.approx(expected) and verdict.running_cost > 10


def test_few_samples_and_stale_estimates_keep_the_nominal_link() -> None:
    for few_or_stale in [("dev", "edge", 0.1e6, 2, 99.0), ("dev", "edge", 0.1e6, 9, 80.0)]:
        problem = observed_problem(PROBLEM, _observed(few_or_stale), POLICY)
        assert problem.infra.link("dev", "edge").bandwidth_bytes_per_s == 10e6


def test_a_slow_node_is_planned_with_its_observed_speed() -> None:
    busy = _observed(nodes=[("edge", 4.0, 5, 99.0)])
    problem = observed_problem(PROBLEM, busy, POLICY)
    assert problem.profiles["edge"].blocks["a"].fp32_s == pytest.approx(0.04)
    assert set(replan(problem, EDGE, POLICY).fresh.nodes) == {"cloud"}


def test_a_down_node_is_left_out_and_a_plan_on_it_cannot_run() -> None:
    problem = observed_problem(PROBLEM, _observed(), POLICY, down={"edge"})
    assert problem.infra.node_names == ("dev", "cloud")
    assert not any("edge" in (lk.source, lk.target) for lk in problem.infra.links)
    verdict = replan(problem, EDGE, POLICY)
    assert verdict.running_cost == float("inf") and verdict.running_eval is None
    assert verdict.fresh.nodes == {"cloud"}


def test_the_device_is_never_left_out() -> None:
    problem = observed_problem(PROBLEM, _observed(), POLICY, down={"dev"})
    assert "dev" in problem.infra.node_names


@pytest.mark.parametrize(
    ("field", "value"),
    [("margin", -0.1), ("check_interval_s", 0.0), ("stale_s", float("inf")), ("max_attempts", 0)],
)
def test_a_policy_out_of_range_is_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(InputError) as refused:
        AdaptPolicy(**{field: value})
    assert refused.value.field == field


def test_a_nodes_unobserved_links_slow_down_with_its_observed_ones() -> None:
    slow = _observed(("dev", "edge", 1e6, 5, 99.0))  # 10x below nominal
    shared = observed_problem(PROBLEM, slow, POLICY)
    assert shared.infra.link("dev", "cloud").bandwidth_bytes_per_s == pytest.approx(1e6)
    assert shared.infra.link("edge", "cloud").bandwidth_bytes_per_s == 10e6  # another sender
    apart = observed_problem(PROBLEM, slow, AdaptPolicy(shared_uplink=False))
    assert apart.infra.link("dev", "cloud").bandwidth_bytes_per_s == 10e6
