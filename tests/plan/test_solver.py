"""Solver statuses: a time-limited HiGHS run is "feasible", never "optimal"."""

from __future__ import annotations

from types import SimpleNamespace

import highspy
import pulp
import pytest

from qsplit.errors import InputError
from qsplit.plan._highs import RelaxFirst, mip_status
from qsplit.plan._solver import open_session

Status = highspy.HighsModelStatus


def _model_reporting(status: object, primal_solution_status: int) -> SimpleNamespace:
    return SimpleNamespace(
        getModelStatus=lambda: status,
        getInfo=lambda: SimpleNamespace(primal_solution_status=primal_solution_status),
    )


@pytest.mark.parametrize(
    ("status", "primal", "expected"),
    [
        (Status.kOptimal, 2, "optimal"),
        (Status.kTimeLimit, 2, "feasible"),  # PuLP calls this "Optimal"
        (Status.kTimeLimit, 0, "no-solution"),
        (Status.kInterrupt, 2, "feasible"),
        (Status.kInfeasible, 0, "infeasible"),
        (Status.kUnboundedOrInfeasible, 0, "infeasible"),
        (Status.kUnbounded, 0, "unbounded"),
    ],
)
def test_highs_status_reads_the_solution_status(status, primal, expected) -> None:
    assert mip_status(_model_reporting(status, primal)) == expected


def _knapsack() -> tuple[pulp.LpProblem, list[pulp.LpVariable], pulp.LpConstraint]:
    prob = pulp.LpProblem("k", pulp.LpMinimize)
    xs = [prob.add_variable(f"x{i}", 0, None, pulp.LpBinary) for i in range(4)]
    row = pulp.lpSum((i + 1) * x for i, x in enumerate(xs)) <= 100
    row.name = "cap"
    prob.addConstraint(row)
    prob.addConstraint(pulp.lpSum(xs) >= 2)
    return prob, xs, row


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_objective_and_bounds_change_between_solves(solver: str) -> None:
    prob, xs, row = _knapsack()
    session = open_session(prob, solver)
    cheapest = session.solve(pulp.lpSum((i + 1) * x for i, x in enumerate(xs)))
    assert cheapest.status == "optimal"
    assert [x.value() for x in xs] == pytest.approx([1, 1, 0, 0])
    dearest = session.solve(pulp.lpSum(-(i + 1) * x for i, x in enumerate(xs)))
    assert [x.value() for x in xs] == pytest.approx([1, 1, 1, 1])
    session.set_upper(row, 6)
    assert session.solve(pulp.lpSum(-(i + 1) * x for i, x in enumerate(xs))).has_solution
    assert sum((i + 1) * x.value() for i, x in enumerate(xs)) == pytest.approx(6)
    session.set_upper(row, 2)
    assert session.solve(pulp.lpSum(xs)).status == "infeasible"
    session.set_upper(row, None)
    assert session.solve(pulp.lpSum(-x for x in xs)).status == "optimal"
    assert dearest.gap is None or dearest.gap <= 1e-6


def test_unknown_solver_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown solver"):
        open_session(_knapsack()[0], "glpk")


def _no_branch_and_bound(*_: object) -> None:
    raise AssertionError("branch and bound ran although the relaxation settled the solve")


def test_an_integral_relaxation_needs_no_branch_and_bound(monkeypatch) -> None:
    prob, xs, _ = _knapsack()
    session = open_session(prob, "highs")
    monkeypatch.setattr(RelaxFirst, "_branch_and_bound", _no_branch_and_bound)
    result = session.solve(pulp.lpSum((i + 1) * x for i, x in enumerate(xs)))
    assert result.status == "optimal"
    assert [x.value() for x in xs] == pytest.approx([1, 1, 0, 0])


def _pick_two_of_five() -> tuple[pulp.LpProblem, list[pulp.LpVariable], pulp.LpConstraint]:
    # The LP relaxation is fractional for the first objective (odd weights, "exactly 2.5").
    prob = pulp.LpProblem("p", pulp.LpMinimize)
    xs = [prob.add_variable(f"x{i}", 0, None, pulp.LpBinary) for i in range(5)]
    cost = pulp.lpSum(c * x for c, x in zip((3, 5, 4, 7, 6), xs, strict=True))
    held = cost <= 1e30
    held.name = "held"
    prob.addConstraint(held)
    prob.addConstraint(pulp.lpSum(2 * x for x in xs[:3]) + xs[3] + xs[4] >= 3)
    return prob, xs, held


def test_holding_a_minimised_row_keeps_exactly_its_optima_and_is_undone() -> None:
    prob, xs, held = _pick_two_of_five()
    cost = held.expr.copy()
    session = open_session(prob, "highs")
    assert session.solve(cost).status == "optimal"
    assert pulp.value(cost) == pytest.approx(7)  # x0 + x2, the unique optimum
    session.set_upper(held, 7)  # fixes columns by the last relaxation's reduced costs
    everything = pulp.lpSum(-(i + 1) * x for i, x in enumerate(xs))
    assert session.solve(everything).status == "optimal"
    assert [x.value() for x in xs] == pytest.approx([1, 0, 1, 0, 0])
    session.set_upper(held, None)  # the held columns are released
    assert session.solve(everything).status == "optimal"
    assert [x.value() for x in xs] == pytest.approx([1, 1, 1, 1, 1])
