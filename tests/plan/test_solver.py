"""Solver statuses: a time-limited HiGHS run is "feasible", never "optimal"."""

from __future__ import annotations

import math
from types import SimpleNamespace

import highspy
import numpy as np
import pulp
import pytest

from qsplit.errors import InputError
from qsplit.plan._highs import RelaxFirst, _answer, mip_status
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


def _highs_start_trap() -> tuple[pulp.LpProblem, pulp.LpAffineExpression, dict[str, float]]:
    """The 17-column model of docs/solver.md: HiGHS 1.16.0, given the feasible start (worth 2),
    reports the optimum 0 and returns the start."""
    prob = pulp.LpProblem("trap", pulp.LpMinimize)
    v = {
        i: prob.add_variable(
            f"v{i}", 0, 1 if i < 12 else None, pulp.LpBinary if i >= 12 else pulp.LpContinuous
        )
        for i in range(17)
    }
    rows = [
        v[2] + v[3] == 1,
        v[2] - v[13] == 0,
        v[3] - v[14] == 0,
        v[4] + v[5] - v[12] == 0,
        v[5] - v[15] == 0,
        v[6] + v[7] == 1,
        v[7] - v[16] == 0,
        v[8] + v[9] == 1,
        v[9] - v[12] == 0,
        -v[8] + v[10] + v[11] == 0,
        v[10] - v[13] <= 0,
        v[11] - v[14] <= 0,
        v[1] - v[14] >= 0,
        v[1] - v[16] >= 0,
        v[0] - v[14] <= 0,
        -0.04 * v[0] + 0.04 * v[1] + 0.27 * v[15] - v[16] <= 0.24,
    ]
    for i, row in enumerate(rows):
        row.name = f"r{i}"
        prob.addConstraint(row)
    start = {f"v{i}": 1.0 for i in (1, 3, 4, 6, 9, 12, 14)}
    return prob, v[2] + v[4] + v[6] + v[10], start


def test_a_mip_start_cannot_make_highs_return_a_worse_plan() -> None:
    prob, objective, start = _highs_start_trap()
    session = open_session(prob, "highs")
    solver: RelaxFirst = session._solver  # the run that is given the start, directly
    variables = prob.variables()
    costs = np.zeros(len(variables))
    for var, coefficient in objective.items():
        costs[var.index] = coefficient
    solver.set_objective(costs, 0.0)
    begin = np.array([start.get(var.name, 0.0) for var in variables])
    assert float(costs @ begin) == 2
    outcome = solver._branch_and_bound(costs, 0.0, begin, None, math.inf)
    assert outcome.status == "optimal"
    assert float(costs @ outcome.solution) == pytest.approx(0.0, abs=1e-9)


def test_an_answer_whose_value_is_not_the_reported_objective_is_refused() -> None:
    def answering(objective: float) -> SimpleNamespace:
        return SimpleNamespace(
            getModelStatus=lambda: Status.kOptimal,
            getInfo=lambda: SimpleNamespace(
                objective_function_value=objective, mip_gap=0.0, primal_solution_status=2
            ),
            getSolution=lambda: SimpleNamespace(col_value=[1.0, 0.0]),
        )

    costs = np.array([2.0, 5.0])
    assert _answer(answering(2.5), costs, 0.5)[1] is None
    outcome, wrong = _answer(answering(0.5), costs, 0.5)
    assert outcome.status == "optimal"
    assert wrong == "reports objective 0.5 for a solution worth 2.5"


def _one_fractional(count: int) -> tuple[pulp.LpProblem, list[pulp.LpVariable]]:
    # The relaxation takes x0 = 1, x1 = 1/2 (value 2); the MILP needs both (value 3). The other
    # binaries cost something and are needed nowhere: 0 in the relaxation and in the optimum.
    prob = pulp.LpProblem("f", pulp.LpMinimize)
    xs = [prob.add_variable(f"x{i}", 0, None, pulp.LpBinary) for i in range(count)]
    prob.addConstraint(2 * xs[0] + 2 * xs[1] >= 3)
    prob.setObjective(pulp.lpSum(xs))  # so that the session numbers every column
    return prob, xs


def _costs(solver: RelaxFirst, xs: list[pulp.LpVariable], values: list[float]) -> np.ndarray:
    """The objective ``values·xs``, set on ``solver`` (what the session does before a solve)."""
    costs = np.zeros(len(xs))
    for x, value in zip(xs, values, strict=True):
        costs[x.index] = value
    solver.set_objective(costs, 0.0)
    return costs


def test_an_incumbent_near_the_relaxation_starts_branch_and_bound(monkeypatch) -> None:
    prob, xs = _one_fractional(20)
    solver: RelaxFirst = open_session(prob, "highs")._solver
    costs = _costs(solver, xs, [1.0, 2.0] + [1.0] * 18)
    starts = []
    original = RelaxFirst._branch_and_bound

    def recording(self, costs, offset, start, fixed, time_limit_s):
        starts.append(start)
        return original(self, costs, offset, start, fixed, time_limit_s)

    monkeypatch.setattr(RelaxFirst, "_branch_and_bound", recording)
    everything = np.ones(len(xs))  # a feasible but poor plan (value 21)
    outcome = solver.solve(costs, 0.0, [everything], None, math.inf)
    assert outcome.status == "optimal"
    assert float(costs @ outcome.solution) == pytest.approx(3.0)
    # Branch and bound still has to prove the bound 3 against the relaxation's 2, but it starts
    # from the MILP with the 19 integral columns held, whose optimum is the optimum here.
    assert float(costs @ starts[0]) == pytest.approx(3.0)
    assert np.allclose(starts[0][[x.index for x in xs]], [1, 1] + [0] * 18)


def test_no_incumbent_is_sought_when_much_of_the_relaxation_is_fractional() -> None:
    prob, xs = _one_fractional(4)  # 1 of 4 integer columns fractional: above the 10 % share
    solver: RelaxFirst = open_session(prob, "highs")._solver
    costs = _costs(solver, xs, [1.0, 2.0, 1.0, 1.0])
    assert solver.solve(costs, 0.0, [np.ones(len(xs))], None, math.inf).status == "optimal"
    relaxation = solver._relaxation
    assert relaxation is not None and relaxation.bound == pytest.approx(2.0)
    assert solver._restricted(relaxation, math.inf, math.inf) is None


def test_the_incumbent_near_the_relaxation_must_beat_the_known_plan() -> None:
    prob, xs = _one_fractional(20)
    solver: RelaxFirst = open_session(prob, "highs")._solver
    costs = _costs(solver, xs, [1.0, 2.0] + [1.0] * 18)
    solver.solve(costs, 0.0, [np.ones(len(xs))], None, math.inf)
    relaxation = solver._relaxation
    assert relaxation is not None
    found = solver._restricted(relaxation, math.inf, math.inf)
    assert found is not None and float(costs @ found) == pytest.approx(3.0)
    assert solver._restricted(relaxation, 3.0, math.inf) is None  # not better than 3
