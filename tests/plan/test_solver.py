"""Solver statuses: a time-limited HiGHS run is "feasible", never "optimal"."""

from __future__ import annotations

from types import SimpleNamespace

import highspy
import pulp
import pytest

from qsplit.errors import InputError
from qsplit.plan._solver import _HighsSession, open_session

Status = highspy.HighsModelStatus


def _session_reporting(status: object, primal_solution_status: int) -> _HighsSession:
    session = object.__new__(_HighsSession)
    session._highspy = highspy
    session._model = SimpleNamespace(
        getModelStatus=lambda: status,
        getInfo=lambda: SimpleNamespace(primal_solution_status=primal_solution_status),
    )
    return session


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
    assert _session_reporting(status, primal)._status() == expected


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
