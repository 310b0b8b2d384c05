"""The per-bandwidth table baseline: plans made per grid bandwidth, picked by observed rate."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from plan_helpers import graph, infra, profile

from qsplit.errors import InputError
from qsplit.plan import PlanningProblem, bandwidth_table, plan, plan_key

GRAPH = graph(
    {"a": 1000, "b": 400, "c": 4000},
    [
        ("x", None, ["a"], 400_000, False),
        ("h", "a", ["b", "c"], 40_000, False),
        ("k", "b", ["c"], 4000, False),
        ("y", "c", [], 400, True),
    ],
)
INFRA = infra(
    [("dev", 3.0, 3.5, 10**9), ("edge", 6.0, 2.0, 10**9)],
    [("dev", "edge", 5e6, 0.005), ("edge", "dev", 20e6, 0.005)],
)
TIMES = {"a": 0.1, "b": 0.2, "c": 0.3}
PROFILES = {
    node: profile(node, {b: (t * scale, None) for b, t in TIMES.items()})
    for node, scale in (("dev", 1.0), ("edge", 0.2))
}
PROBLEM = PlanningProblem(GRAPH, INFRA, PROFILES, w_latency=1.0, w_energy=0.0)
GRID = (20e6, 0.1e6, 1e6, 5e6)


def _at(bandwidth: float) -> PlanningProblem:
    uplink = replace(INFRA.link("dev", "edge"), bandwidth_bytes_per_s=bandwidth)
    return replace(PROBLEM, infra=INFRA.with_links([uplink]))


def test_on_grid_points_the_table_gives_the_plan_made_at_that_bandwidth() -> None:
    table = bandwidth_table(PROBLEM, GRID, with_baselines=False)
    assert table.links == (("dev", "edge"),)
    assert table.bandwidths_bytes_per_s == (0.1e6, 1e6, 5e6, 20e6)
    for bandwidth in GRID:
        direct = plan(_at(bandwidth), with_baselines=False)
        chosen = table.select(bandwidth)
        assert plan_key(chosen) == plan_key(direct)
        assert chosen.predicted.latency_s == pytest.approx(direct.predicted.latency_s)
    # The grid spans a real choice: all on the device at 0.1 MB/s, offloading at 20 MB/s.
    assert set(table.select(0.1e6).assignment.values()) == {"dev"}
    assert "edge" in table.select(20e6).assignment.values()
    assert 2 <= len(table.distinct()) <= len(GRID)


def test_between_grid_points_the_slower_points_plan_is_chosen() -> None:
    table = bandwidth_table(PROBLEM, GRID, with_baselines=False)
    assert table.select(4.99e6) is table.plans[1] and table.select(5e6) is table.plans[2]
    assert table.select(1.0) is table.plans[0]  # below the grid: its slowest plan
    assert table.select(1e9) is table.plans[-1]
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(InputError, match="not a positive rate"):
            table.select(bad)


def test_a_table_needs_a_grid_and_links_that_exist() -> None:
    with pytest.raises(InputError, match="positive, finite grid"):
        bandwidth_table(PROBLEM, [])
    with pytest.raises(InputError, match="positive, finite grid"):
        bandwidth_table(PROBLEM, [1e6, -5])
    with pytest.raises(InputError, match="no link from 'dev' to 'dev'"):
        bandwidth_table(PROBLEM, [1e6], links=[("dev", "dev")])
