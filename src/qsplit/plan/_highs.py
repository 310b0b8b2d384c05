"""HiGHS through highspy: the LP relaxation first, branch and bound only when it is needed.

The planner's formulation has a nearly integral LP relaxation, and its solves differ only in the
objective and a few right-hand sides. So each solve first re-optimises the relaxation from the
previous basis (a few hundred simplex iterations instead of HiGHS's MIP presolve, symmetry
detection and root LP from scratch, which took most of each solve). The relaxation's optimum
``L`` is a lower bound on the MILP's; the candidates are its solution when the binaries come out
integral, and the previous solution when it meets the current rows. A candidate within the
relative gap of ``L`` is optimal, exactly as HiGHS's own gap test would declare it. When no
candidate is near ``L`` and the relaxation has few fractional integer columns, the MILP restricted
to those columns (the others held at their LP values) supplies one more candidate.

Otherwise HiGHS's branch and bound runs, started from the best candidate, after *reduced-cost
fixing*: a binary at a bound whose reduced cost ``d`` exceeds ``U − L`` (``U`` the candidate's
value) cannot move in any solution better than the candidate, since moving it costs at least
``d``; it is fixed for that run. The result is the better of the run's and the candidate, so
the fixing never loses the optimum.

Every answer HiGHS gives is checked before it is used: the value of the solution it returns must
be the objective it reports. HiGHS 1.16.0 breaks that when it is given a MIP start: it maps the
start into its presolved space, takes a wrong value for it there, stops "optimal" at once and
returns the start itself (docs/solver.md has a 17-column reproduction). Such an answer is
thrown away and the run repeated without the start; should that not add up either, the model is
solved by :meth:`RelaxFirst.solve_plain` — HiGHS alone, no start, no fixed column — which is also
what the planner falls back to when a claimed optimum fails its own checks
(:mod:`qsplit.plan._guard`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from importlib.metadata import version
from typing import TYPE_CHECKING

import highspy
import numpy as np
import pulp

from qsplit.errors import SolverError

if TYPE_CHECKING:
    from qsplit.plan._solver import Status

INTEGRALITY_TOLERANCE = 1e-6
"""HiGHS's default ``mip_feasibility_tolerance``: a value this close to an integer is one."""
FEASIBILITY_TOLERANCE = 1e-6
"""How far a previous solution may break a row and still count as meeting it (HiGHS's own)."""
FIXING_SAFETY = 1e-6
"""Relative margin on ``U − L`` before fixing a column, so LP round-off never fixes one wrongly."""
FIXING_MAX_GAP = 0.01
"""Fix by an incumbent only within this relative gap (of the objective without its constant).

From a distant incumbent the fixing holds few columns and can mislead HiGHS: on the synthetic
1,600 × 3 graph the first solve (gap 4.7 %, a fifth of the 0/1 columns fixed) took 46–61 s
instead of 10–12 s."""
RESTRICTED_MAX_FRACTIONAL = 0.1
"""Look for an incumbent near the relaxation (:meth:`RelaxFirst._restricted`) only when at most
this share of the integer columns is fractional there; with more, the restricted MILP is nearly
the whole one (the least-energy solve of the hard budget case: 896 of 1,324, 8 s for a plan the
previous solve had already found)."""
ANSWER_TOLERANCE = 1e-7
"""Relative difference allowed between the objective HiGHS reports and the value of the solution
it returns (both are sums of the same products; a real disagreement is orders larger)."""


def new_highs() -> highspy.Highs:
    """A HiGHS instance that prints nothing.

    HiGHS 1.16 prints its banner to the process's standard output (from C++, past Python's
    ``sys.stdout``) when the first instance is made, before any option can turn output off; it
    landed in the middle of ``qsplit plan``'s tables and in anything piped from them. So the
    first instance of a process is made with file descriptor 1 pointed at ``/dev/null``.
    """
    _quiet_first_instance()
    model = highspy.Highs()
    model.setOptionValue("output_flag", False)
    return model


@cache
def _quiet_first_instance() -> None:
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class Matrix:
    """The model as arrays: the source of both HiGHS instances and the feasibility checks."""

    col_lower: np.ndarray
    col_upper: np.ndarray
    integral: np.ndarray
    starts: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray

    @classmethod
    def of(cls, prob: pulp.LpProblem, variables: list[pulp.LpVariable]) -> Matrix:
        """Number ``variables`` and ``prob``'s rows (``.index``) and collect them row-wise."""
        for index, var in enumerate(variables):
            var.index = index
        inf = highspy.kHighsInf
        starts, indices, values, row_lower, row_upper = [0], [], [], [], []
        for index, row in enumerate(prob.constraints.values()):
            row.index = index
            for var, coefficient in row.items():
                indices.append(var.index)
                values.append(coefficient)
            starts.append(len(indices))
            lower, upper = row.getLb(), row.getUb()
            row_lower.append(-inf if lower is None else lower)
            row_upper.append(inf if upper is None else upper)
        return cls(
            col_lower=np.array([-inf if v.lowBound is None else v.lowBound for v in variables]),
            col_upper=np.array([inf if v.upBound is None else v.upBound for v in variables]),
            integral=np.array([v.cat == pulp.LpInteger for v in variables]),
            starts=np.array(starts, dtype=np.int32),
            indices=np.array(indices, dtype=np.int32),
            values=np.array(values, dtype=np.float64),
            row_lower=np.array(row_lower, dtype=np.float64),
            row_upper=np.array(row_upper, dtype=np.float64),
        )

    def load(self, model: highspy.Highs, *, integral: bool) -> None:
        """Pass the model to ``model`` in one call, objective 0 (each solve sets its own).

        PuLP's own loader adds columns and rows one call at a time, which took longer than
        building the model (5.7 s at 1,850 blocks × 6 nodes).
        """
        columns = len(self.col_lower)
        model.passModel(
            columns,
            len(self.row_lower),
            len(self.indices),
            int(highspy.MatrixFormat.kRowwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            np.zeros(columns),
            self.col_lower,
            self.col_upper,
            self.row_lower,
            self.row_upper,
            self.starts[:-1],
            self.indices,
            self.values,
            (self.integral if integral else np.zeros(columns, dtype=bool)).astype(np.int32),
        )

    def feasible(self, solution: np.ndarray) -> bool:
        """Whether ``solution`` meets every bound and row, within HiGHS's tolerances."""
        activity = np.bincount(
            self._row_of_entry,
            weights=self.values * solution[self.indices],
            minlength=len(self.row_lower),
        )
        tolerance = FEASIBILITY_TOLERANCE
        return bool(
            np.all(solution >= self.col_lower - tolerance)
            and np.all(solution <= self.col_upper + tolerance)
            and np.all(activity >= self.row_lower - tolerance)
            and np.all(activity <= self.row_upper + tolerance)
            and self.is_integral(solution)
        )

    @cached_property
    def _row_of_entry(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.row_lower)), np.diff(self.starts))

    @cached_property
    def zero_one(self) -> np.ndarray:
        """Columns that are 0 or 1 in every solution worth finding: binaries, and continuous
        columns bounded to [0, 1], which the formulation guarantees to be exact products of
        binaries in the least-cost completion of any ``x``, ``z``, ``u`` (see
        :mod:`qsplit.plan._milp`).
        """
        return self.integral | ((self.col_lower == 0) & (self.col_upper == 1))

    def is_integral(self, solution: np.ndarray) -> bool:
        part = solution[self.integral]
        return bool(np.all(np.abs(part - np.round(part)) <= INTEGRALITY_TOLERANCE))


@dataclass(frozen=True)
class Outcome:
    """A solve's status, its solution (all columns) and relative gap."""

    status: Status
    solution: np.ndarray | None
    gap: float | None


def relative_gap(value: float, bound: float) -> float:
    """HiGHS's relative gap: ``(U − L) / |U|`` (0 when both are 0)."""
    if value == bound:
        return 0.0
    return (value - bound) / max(abs(value), 1e-300)


@dataclass(frozen=True)
class _Relaxation:
    """An LP optimum and its reduced costs: a lower bound on ``costs·v`` over the LP region.

    For any ``v`` in that region, ``costs·v + offset ≥ bound + Σ |reduced_j|·|v_j − values_j|``
    over the columns at a bound, which is what reduced-cost fixing uses.
    """

    costs: np.ndarray
    offset: float
    bound: float
    values: np.ndarray
    reduced: np.ndarray


class RelaxFirst:
    """Two highspy instances of one model: an LP kept warm, and the MILP for hard cases."""

    def __init__(self, matrix: Matrix, mip_gap: float) -> None:
        self.matrix = matrix
        self.mip_gap = mip_gap
        self.lp = self._instance(integral=False)
        self.mip = self._instance(integral=True)
        self._relaxation: _Relaxation | None = None
        """The last LP optimum, while the LP region has only shrunk since."""
        self._held: dict[int, float] = {}
        """Columns fixed because a tightened row leaves them no other value."""

    def _instance(self, *, integral: bool) -> highspy.Highs:
        model = new_highs()
        model.setOptionValue("mip_rel_gap", self.mip_gap)
        model.setOptionValue("mip_abs_gap", 0.0)  # objectives can be tiny (seconds, joules)
        # HiGHS 1.15's restart after root reduced-cost fixing can return a worse solution as
        # optimal once columns are fixed (ERGO-Code/HiGHS#2171); the fixing here replaces it.
        model.setOptionValue("mip_allow_restart", False)
        self.matrix.load(model, integral=integral)
        return model

    def set_objective(self, costs: np.ndarray, offset: float) -> None:
        everything = np.arange(len(costs), dtype=np.int32)
        for model in (self.lp, self.mip):
            model.changeColsCost(len(costs), everything, costs)
            model.changeObjectiveOffset(offset)

    def set_row_upper(self, row: int, upper: float) -> None:
        """Change a row's upper bound; tightening a row that was just minimised fixes columns.

        When the row's expression is the objective of the last LP (the lexicographic hold: "keep
        latency at its optimum"), every binary whose reduced cost exceeds ``upper − L`` cannot
        move within the row, so it is held at its value until some row is loosened again.
        """
        loosened = upper > self.matrix.row_upper[row]
        self.matrix.row_upper[row] = upper
        for model in (self.lp, self.mip):
            model.changeRowBounds(row, self.matrix.row_lower[row], upper)
        if loosened:
            self._release()
            return
        relaxation = self._relaxation
        if relaxation is None or not self._row_is(row, relaxation.costs):
            return
        least = relaxation.bound - relaxation.offset
        columns, values = self._fixable(relaxation, upper - least, upper)
        self._held.update(zip(columns.tolist(), values.tolist(), strict=True))
        self._set_bounds(columns, values, values)

    def _row_is(self, row: int, costs: np.ndarray) -> bool:
        start, end = self.matrix.starts[row], self.matrix.starts[row + 1]
        coefficients = np.zeros_like(costs)
        coefficients[self.matrix.indices[start:end]] = self.matrix.values[start:end]
        return bool(np.array_equal(coefficients, costs))

    def _release(self) -> None:
        """Undo the held columns: the region they were derived for has grown."""
        self._relaxation = None
        columns = np.array(sorted(self._held), dtype=np.int32)
        self._held.clear()
        self._set_bounds(columns, self.matrix.col_lower[columns], self.matrix.col_upper[columns])

    def _set_bounds(
        self,
        columns: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        models: tuple[highspy.Highs, ...] | None = None,
    ) -> None:
        if len(columns):
            for model in models or (self.lp, self.mip):
                model.changeColsBounds(len(columns), columns, lower, upper)

    def _restore(self, columns: np.ndarray, models: tuple[highspy.Highs, ...]) -> None:
        """Put ``columns`` back to their bounds: the model's, or the held value."""
        lower, upper = self.matrix.col_lower[columns].copy(), self.matrix.col_upper[columns].copy()
        for i, column in enumerate(columns.tolist()):
            if column in self._held:
                lower[i] = upper[i] = self._held[column]
        self._set_bounds(columns, lower, upper, models)

    def solve(
        self,
        costs: np.ndarray,
        offset: float,
        candidates: list[np.ndarray],
        hint: tuple[np.ndarray, np.ndarray] | None,
        time_limit_s: float,
        floor: Callable[[float, bool], tuple[float, tuple[np.ndarray, np.ndarray] | None] | None]
        | None = None,
    ) -> Outcome:
        """Minimise ``costs·v + offset``; ``candidates`` are earlier solutions worth checking.

        ``hint`` (values of some columns) is completed by the LP into one more candidate.
        ``floor``, asked only when neither the LP bound nor the incumbent near the relaxation
        settles the solve (it costs up to seconds), is given the best candidate's value and
        whether that is within :data:`FIXING_MAX_GAP` of the LP bound, and returns a lower
        bound proved elsewhere (the two-node walk of :mod:`qsplit.plan._energy_dp`, which that
        value prunes) and a hint that may attain it: a candidate within the gap of the better
        of it and the LP bound is optimal without branch and bound.
        """
        started = time.monotonic()
        self.lp.setOptionValue("time_limit", time_limit_s)
        self.lp.run()
        lp_status = self.lp.getModelStatus()
        if lp_status in (
            highspy.HighsModelStatus.kInfeasible,
            highspy.HighsModelStatus.kUnboundedOrInfeasible,
        ):
            return Outcome("infeasible", None, None)
        relaxation = None
        if lp_status == highspy.HighsModelStatus.kOptimal:
            solution = self.lp.getSolution()
            relaxation = _Relaxation(
                costs=costs,
                offset=offset,
                bound=self.lp.getInfo().objective_function_value,
                values=np.array(solution.col_value),
                reduced=np.array(solution.col_dual),
            )
            if self.matrix.is_integral(relaxation.values):
                candidates = [relaxation.values, *candidates]
            if hint is not None:
                candidates = [*candidates, *self._complete(hint, costs)]
        self._relaxation = relaxation
        best = self._best(candidates, costs)
        if best is None:
            return self._branch_and_bound(costs, offset, hint, None, time_limit_s)
        fixed = None
        if relaxation is not None:
            value = float(costs @ best) + offset
            gap = max(relative_gap(value, relaxation.bound), 0.0)
            if gap <= self.mip_gap:
                return Outcome("optimal", best, gap)
            # The spread measured without the objective's constant: the normalised objective
            # subtracts large constants, which make its relative gap look huge.
            near = relative_gap(value - offset, relaxation.bound - offset) <= FIXING_MAX_GAP
            restricted = None if near else self._restricted(relaxation, value, time_limit_s)
            if restricted is not None:
                best, value = restricted, float(costs @ restricted) + offset
                gap = max(relative_gap(value, relaxation.bound), 0.0)
                if gap <= self.mip_gap:
                    return Outcome("optimal", best, gap)
            near = relative_gap(value - offset, relaxation.bound - offset) <= FIXING_MAX_GAP
            proved = None if floor is None else floor(value, near)
            if proved is not None:
                bound, partial = proved
                more = [] if partial is None else self._complete(partial, costs)
                best = self._best([best, *more], costs)
                assert best is not None  # it was a feasible candidate already
                value = float(costs @ best) + offset
                gap = max(relative_gap(value, max(bound, relaxation.bound)), 0.0)
                if gap <= self.mip_gap:
                    return Outcome("optimal", best, gap)
            near = relative_gap(value - offset, relaxation.bound - offset) <= FIXING_MAX_GAP
            if near:
                fixed = self._fixable(relaxation, value - relaxation.bound, value)
        time_limit_s = _left(started + time_limit_s)
        outcome = self._branch_and_bound(costs, offset, best, fixed, time_limit_s)
        if outcome.solution is None or float(costs @ best) < float(costs @ outcome.solution):
            # The fixing only excludes solutions worse than ``best``, so it stays the optimum
            # when the restricted run proves nothing better (or finds nothing in time).
            if outcome.status in ("optimal", "infeasible"):
                return Outcome("optimal", best, 0.0)
            value = float(costs @ best) + offset  # out of time: its gap to the relaxation
            gap = None if relaxation is None else max(relative_gap(value, relaxation.bound), 0.0)
            return Outcome("feasible", best, gap)
        return outcome

    def _best(self, candidates: list[np.ndarray], costs: np.ndarray) -> np.ndarray | None:
        """The cheapest of ``candidates`` that meets every row, if any."""
        return min(
            (c for c in candidates if self.matrix.feasible(c)),
            key=lambda c: float(costs @ c),
            default=None,
        )

    def _complete(self, hint: tuple[np.ndarray, np.ndarray], costs: np.ndarray) -> list[np.ndarray]:
        """The best values of the other columns with the hinted ones held (if feasible).

        A fresh LP, whose presolve removes the held columns at once, is faster than re-solving
        the warm one from a basis that the held columns make far from optimal.
        """
        columns, values = hint
        model = self._instance(integral=False)
        model.changeColsCost(len(costs), np.arange(len(costs), dtype=np.int32), costs)
        model.changeColsBounds(len(columns), columns, values, values)
        model.run()
        optimal = model.getModelStatus() == highspy.HighsModelStatus.kOptimal
        return [np.array(model.getSolution().col_value)] if optimal else []

    def _restricted(
        self, relaxation: _Relaxation, value: float, time_limit_s: float
    ) -> np.ndarray | None:
        """A plan better than ``value`` near the relaxation, or ``None``.

        When few integer columns of the LP optimum are fractional, the MILP with every other
        integer column held at its LP value is small, and its optimum is often the MILP's: the
        first solve of the hard budget case (18 of 1,324 fractional) found the optimum this way
        in 2–3 s on a busy machine, where HiGHS's run from the single-node start took 18–45 s.
        It is only an incumbent — checked against the rows here and priced by the caller — so
        it never decides optimality by itself; what it buys is a value within the gap of the
        bound, or close enough for reduced-cost fixing. It is not sought when a known plan is
        already that close: the second solve of each lexicographic pair starts from the first
        one's plan, usually its optimum, and the restricted MILP took seconds to find it again.
        """
        values = relaxation.values
        integral = self.matrix.integral
        whole = integral & (np.abs(values - np.round(values)) <= INTEGRALITY_TOLERANCE)
        if np.count_nonzero(integral & ~whole) > RESTRICTED_MAX_FRACTIONAL * np.sum(integral):
            return None
        columns = np.flatnonzero(whole).astype(np.int32)
        costs, offset = relaxation.costs, relaxation.offset
        held = (columns, np.round(values[columns]))
        outcome, wrong = self._run(None, held, costs, offset, time_limit_s)
        solution = outcome.solution
        if wrong is not None or solution is None or not self.matrix.feasible(solution):
            return None
        return solution if float(costs @ solution) + offset < value else None

    def _fixable(
        self, relaxation: _Relaxation, slack: float, scale: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Binaries at a bound whose reduced cost exceeds ``slack``, and that bound.

        Moving such a column off its bound raises the objective by more than ``slack``.
        """
        values, reduced = relaxation.values, relaxation.reduced
        margin = slack + FIXING_SAFETY * max(1.0, abs(scale))
        at_lower = np.abs(values - self.matrix.col_lower) <= INTEGRALITY_TOLERANCE
        at_upper = np.abs(values - self.matrix.col_upper) <= INTEGRALITY_TOLERANCE
        fixed = self.matrix.zero_one & (
            (at_lower & (reduced > margin)) | (at_upper & (-reduced > margin))
        )
        columns = np.flatnonzero(fixed).astype(np.int32)
        return columns, np.round(values[columns])

    def _branch_and_bound(
        self,
        costs: np.ndarray,
        offset: float,
        start: np.ndarray | tuple[np.ndarray, np.ndarray] | None,
        fixed: tuple[np.ndarray, np.ndarray] | None,
        time_limit_s: float,
    ) -> Outcome:
        """HiGHS's MILP solve from ``start``, the ``fixed`` columns held for this run only.

        An answer that does not add up (see :func:`_answer`; HiGHS 1.16.0 returning its start)
        is replaced by the same run without the start, and if that does not add up either, by
        a plain solve. Out of time without a plan, the run's own solution is kept unproven.
        """
        deadline = time.monotonic() + time_limit_s
        outcome, wrong = self._run(start, fixed, costs, offset, time_limit_s)
        if wrong is None:
            return outcome
        retry, wrong = self._run(None, fixed, costs, offset, _left(deadline))
        if wrong is not None:
            retry = self.solve_plain(costs, offset, _left(deadline))
        if (
            retry.solution is None
            and outcome.solution is not None
            and self.matrix.feasible(outcome.solution)
        ):
            return Outcome("feasible", outcome.solution, None)
        return retry

    def _run(
        self,
        start: np.ndarray | tuple[np.ndarray, np.ndarray] | None,
        fixed: tuple[np.ndarray, np.ndarray] | None,
        costs: np.ndarray,
        offset: float,
        time_limit_s: float,
    ) -> tuple[Outcome, str | None]:
        """One run of the MILP instance, and why its answer cannot be used (``None``: it can)."""
        model = self.mip
        columns, held = fixed if fixed is not None else (np.zeros(0, dtype=np.int32), None)
        self._set_bounds(columns, held, held, models=(model,))
        model.setOptionValue("time_limit", time_limit_s)
        if start is not None:
            columns_set, values = (
                start
                if isinstance(start, tuple)
                else (np.arange(len(start), dtype=np.int32), start)
            )
            model.setSolution(len(columns_set), columns_set, values)
        model.run()
        answer = _answer(model, costs, offset)  # before restoring bounds: any change clears it
        self._restore(columns, models=(model,))
        return answer

    def solve_plain(self, costs: np.ndarray, offset: float, time_limit_s: float) -> Outcome:
        """HiGHS alone on the current model: no relaxation first, no fixed column, no start.

        A fresh instance, so nothing of the earlier solves (held columns, starts, bases) reaches
        it. Raises :class:`SolverError` if even its answer does not add up.
        """
        model = self._instance(integral=True)
        model.changeColsCost(len(costs), np.arange(len(costs), dtype=np.int32), costs)
        model.changeObjectiveOffset(offset)
        model.setOptionValue("time_limit", time_limit_s)
        model.run()
        outcome, wrong = _answer(model, costs, offset)
        if wrong is not None:
            raise SolverError(
                f"internal error: HiGHS {version('highspy')} {wrong}, even without a start; "
                "use another highspy release (docs/solver.md) and please report it"
            )
        return outcome


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.01)


def _answer(model: highspy.Highs, costs: np.ndarray, offset: float) -> tuple[Outcome, str | None]:
    """A finished MILP run's outcome, and why it cannot be used (``None`` when it can).

    It cannot when the solution HiGHS returns is not worth the objective value it reports.
    """
    status = mip_status(model)
    info = model.getInfo()
    gap = info.mip_gap
    if status not in ("optimal", "feasible"):
        return Outcome(status, None, gap if math.isfinite(gap) else None), None
    solution = np.array(model.getSolution().col_value)
    outcome = Outcome(status, solution, gap if math.isfinite(gap) else None)
    reported, value = info.objective_function_value, float(costs @ solution) + offset
    if math.isclose(reported, value, rel_tol=ANSWER_TOLERANCE, abs_tol=1e-9):
        return outcome, None
    return outcome, f"reports objective {reported:.10g} for a solution worth {value:.10g}"


def mip_status(model: highspy.Highs) -> Status:
    """The status of a MILP run, from the *solution* status when it stopped early."""
    kinds = highspy.HighsModelStatus
    status = model.getModelStatus()
    if status == kinds.kOptimal:
        return "optimal"
    if status in (kinds.kInfeasible, kinds.kUnboundedOrInfeasible):
        return "infeasible"
    if status == kinds.kUnbounded:
        return "unbounded"
    feasible = model.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
    return "feasible" if feasible else "no-solution"
