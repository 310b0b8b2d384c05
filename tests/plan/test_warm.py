"""A warm model updated to other link and node speeds is the model a fresh build makes, and
plans the same (qsplit.plan.WarmModel, used by re-planning in qsplit.adapt)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from test_brute_force import random_problem
from test_link_brute_force import link_problem

from qsplit.errors import QsplitError
from qsplit.infra import Link
from qsplit.plan import Bounds, PlanningProblem, WarmModel, plan
from qsplit.plan._milp import build
from qsplit.plan._warm import _coefficients, _containers


def moved(problem: PlanningProblem, seed: int) -> PlanningProblem:
    """``problem`` with every link's bandwidth and latency and every node's speed redrawn."""
    rng = random.Random(seed)
    links = [
        Link(
            lk.source,
            lk.target,
            lk.bandwidth_bytes_per_s * rng.uniform(0.05, 2.0),
            lk.latency_s * rng.uniform(0.0, 3.0) + rng.uniform(0, 0.01),
        )
        for lk in problem.infra.links
    ]
    profiles = {
        n: replace(p, blocks=p.blocks_scaled(rng.uniform(0.3, 3.0)))
        for n, p in problem.profiles.items()
    }
    return replace(problem, infra=problem.infra.with_links(links), profiles=profiles)


def outcome(problem: PlanningProblem, warm: WarmModel | None) -> object:
    try:
        result = plan(problem, with_baselines=False, warm=warm)
    except QsplitError as exc:
        return type(exc)
    return result.predicted.latency_s, result.predicted.energy_j


CASES = [
    *[("blocks", seed, model) for seed in range(6) for model in ("sum", "critical-path")],
    *[("links", seed, model) for seed in range(4) for model in ("sum", "critical-path")],
    *[("routed", seed, "critical-path") for seed in range(3)],
]


@pytest.mark.parametrize(("kind", "seed", "latency_model"), CASES)
def test_an_updated_model_is_a_fresh_build_and_plans_the_same(
    kind: str, seed: int, latency_model: str
) -> None:
    if kind == "links":
        base = link_problem(seed, latency_model)
    else:
        base = random_problem(seed, latency_model, routed=kind == "routed")
    warm = WarmModel(base)
    for step in range(3):
        problem = moved(base, seed * 10 + step)
        form = warm.formulation(problem)
        assert form is not None
        updated = _coefficients(_containers(form))
        fresh = _coefficients(_containers(build(problem)))
        assert updated.keys() >= {k for k, v in fresh.items() if v != 0}
        for key, value in updated.items():
            assert value == pytest.approx(fresh.get(key, 0.0), rel=1e-9, abs=1e-12), key
        got, want = outcome(problem, warm), outcome(problem, None)
        if isinstance(want, tuple):
            assert got == pytest.approx(want, rel=1e-6)
        else:
            assert got == want


def test_anything_but_speeds_gets_a_fresh_build() -> None:
    base = random_problem(1, "sum")
    warm = WarmModel(base)
    assert warm.formulation(moved(base, 7)) is not None
    assert warm.formulation(replace(base, w_latency=base.w_latency / 2)) is None
    assert warm.formulation(replace(base, bounds=Bounds(noise_max=1.0))) is None
    node = base.infra.node_names[-1]
    profile = base.profiles[node]
    first = next(iter(profile.blocks))
    uneven = dict(profile.blocks)
    uneven[first] = replace(uneven[first], fp32_s=uneven[first].fp32_s * 2)
    other = replace(base, profiles={**base.profiles, node: replace(profile, blocks=uneven)})
    assert warm.formulation(other) is None  # one block slower: not a node speed factor
