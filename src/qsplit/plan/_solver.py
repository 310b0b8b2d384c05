"""The solver boundary: one MILP built once, then re-solved with other objectives and bounds.

The planner solves the same model several times (payoff table, final objective, infeasibility
explanation). A :class:`SolverSession` keeps the model loaded and only changes what differs
between solves: the objective and the right-hand sides of named ``≤`` rows. With HiGHS (the
default) the model is passed to highspy once and then edited in place; each solve re-optimises
the LP relaxation first and runs branch and bound only when that does not settle it
(:mod:`qsplit.plan._highs`). Other solvers go through PuLP's generic interface, which re-exports
the (unchanged) PuLP model on each solve.

Statuses are read from the *solution* status, not only the model status: PuLP maps a HiGHS run
stopped by its time limit to "Optimal" while the solution is only integer-feasible.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import pulp

from qsplit.errors import DependencyError, InputError, SolverError

SolverName = Literal["highs", "cbc", "cplex", "gurobi"]
SOLVERS: tuple[str, ...] = ("highs", "cbc", "cplex", "gurobi")

Status = Literal["optimal", "feasible", "infeasible", "unbounded", "no-solution"]

DISABLED = 1e30
"""Right-hand side that switches a ``≤`` row off (solvers read it as infinite)."""

TIME_LIMIT_S = 60.0
"""Default limit on all solves of one plan or front together, in seconds.

Every input measured so far plans well within it (the 1,850 × 6 synthetic graph in ~12 s, the
prototype's 652 blocks in ~2 s; docs/BENCHMARKS.md); a problem that takes longer — hundreds of
tiny blocks under a binding device-energy budget took 86 s — stops with the best plan found and
its gap instead of keeping a user waiting without bound. ``None`` removes the limit."""


@dataclass(frozen=True)
class SolveResult:
    """Outcome of one solve; variable values are left on the PuLP variables."""

    status: Status
    gap: float | None
    """Relative MIP gap reported by the solver (``None`` when it does not report one)."""
    solve_time_s: float

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")


def run_status(results: Sequence[SolveResult]) -> tuple[str, float | None]:
    """The status and gap a plan or front reports for its solves.

    ``optimal`` when every solve proved optimality; otherwise ``time-limit`` (the limit stopped a
    solve, which kept the best plan it had) with the largest gap of those solves, ``None`` when a
    solver did not report one.
    """
    stopped = [r for r in results if r.status != "optimal"]
    if not stopped:
        return "optimal", max((r.gap or 0.0 for r in results), default=0.0)
    gaps = [r.gap for r in stopped]
    return "time-limit", None if None in gaps else max(g for g in gaps if g is not None)


@dataclass(frozen=True)
class Floor:
    """A lower bound on the next solve's objective proved outside the solver (under the same
    rows), and a plan that may attain it (some variables' values, completed by the solver)."""

    value: float
    plan: Mapping[pulp.LpVariable, float] | None = None


class SolverSession(ABC):
    """A loaded model that can be re-solved; created by :func:`open_session`."""

    name: str

    def __init__(self, prob: pulp.LpProblem, *, mip_gap: float, deadline: float | None) -> None:
        self._prob = prob
        self._mip_gap = mip_gap
        self._deadline = deadline

    def set_upper(self, row: pulp.LpConstraint, rhs: float | None) -> None:
        """Make ``row`` read ``expression ≤ rhs``; ``None`` switches it off."""
        bound = DISABLED if rhs is None else rhs
        row.constant = row.expr.constant - bound

    @abstractmethod
    def suggest(self, values: Mapping[pulp.LpVariable, float]) -> None:
        """Offer a starting point for the next solve; it may set only some variables."""

    @abstractmethod
    def solve(
        self,
        objective: pulp.LpAffineExpression,
        *,
        plain: bool = False,
        floor: Callable[[float, bool], Floor | None] | None = None,
    ) -> SolveResult:
        """Minimise ``objective``; on success the values are on the PuLP variables.

        ``plain`` asks for the solver alone, without any shortcut of the session: what the
        planner's guard falls back to when a claimed optimum is refuted. ``floor`` gives a
        bound proved elsewhere, asked for only when the session needs one (it may take
        seconds) with the objective value of the best plan it has (a cutoff) and whether that
        is within 1 % of its relaxation; sessions without such a shortcut ignore it.
        """

    def _time_left_s(self) -> float | None:
        if self._deadline is None:
            return None
        return max(self._deadline - time.monotonic(), 0.01)


class _HighsSession(SolverSession):
    """HiGHS through highspy: the LP relaxation first, branch and bound when it is needed.

    See :mod:`qsplit.plan._highs`. The solution of each solve is offered to the next one.
    """

    name = "highs"

    def __init__(self, prob: pulp.LpProblem, *, mip_gap: float, deadline: float | None) -> None:
        super().__init__(prob, mip_gap=mip_gap, deadline=deadline)
        from qsplit.plan._highs import Matrix, RelaxFirst

        self._variables = prob.variables()
        self._solver = RelaxFirst(Matrix.of(prob, self._variables), mip_gap)
        self._last: np.ndarray | None = None
        self._hint: tuple[np.ndarray, np.ndarray] | None = None

    def suggest(self, values: Mapping[pulp.LpVariable, float]) -> None:
        # HiGHS completes a partial start by solving for the variables left out.
        self._hint = self._partial(values)

    def _proved(
        self, floor: Callable[[float, bool], Floor | None], cutoff: float, near: bool
    ) -> tuple[float, tuple[np.ndarray, np.ndarray] | None] | None:
        found = floor(cutoff, near)
        return None if found is None else (found.value, self._partial(found.plan))

    @staticmethod
    def _partial(
        values: Mapping[pulp.LpVariable, float] | None,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if values is None:
            return None
        indices = np.array([var.index for var in values], dtype=np.int32)
        return indices, np.array(list(values.values()), dtype=np.float64)

    def set_upper(self, row: pulp.LpConstraint, rhs: float | None) -> None:
        super().set_upper(row, rhs)
        self._solver.set_row_upper(row.index, math.inf if rhs is None else row.getUb())

    def solve(
        self,
        objective: pulp.LpAffineExpression,
        *,
        plain: bool = False,
        floor: Callable[[float, bool], Floor | None] | None = None,
    ) -> SolveResult:
        costs = np.zeros(len(self._variables))
        for var, coefficient in objective.items():
            costs[var.index] = coefficient
        self._solver.set_objective(costs, objective.constant)
        left = self._time_left_s()
        time_limit_s = math.inf if left is None else left
        started = time.perf_counter()
        if plain:
            outcome = self._solver.solve_plain(costs, objective.constant, time_limit_s)
        else:
            outcome = self._solver.solve(
                costs,
                objective.constant,
                candidates=[] if self._last is None else [self._last],
                hint=self._hint if self._last is None else None,
                time_limit_s=time_limit_s,
                floor=None if floor is None else partial(self._proved, floor),
            )
        elapsed = time.perf_counter() - started
        if outcome.solution is not None:
            self._last = outcome.solution
            for var in self._variables:
                var.varValue = float(outcome.solution[var.index])
        return SolveResult(outcome.status, outcome.gap, elapsed)


class _PulpSession(SolverSession):
    """Any PuLP solver (CBC, CPLEX, Gurobi): the PuLP model is kept, the solver re-reads it."""

    def __init__(
        self,
        prob: pulp.LpProblem,
        solver_class: type[pulp.LpSolver],
        name: str,
        *,
        mip_gap: float,
        deadline: float | None,
    ) -> None:
        super().__init__(prob, mip_gap=mip_gap, deadline=deadline)
        self._solver_class = solver_class
        self.name = name
        self._warm = False

    def suggest(self, values: Mapping[pulp.LpVariable, float]) -> None:
        for var, value in values.items():
            var.setInitialValue(value)
        self._warm = True

    def solve(
        self,
        objective: pulp.LpAffineExpression,
        *,
        plain: bool = False,
        floor: Callable[[float, bool], Floor | None] | None = None,
    ) -> SolveResult:
        # PuLP's solvers run without shortcuts here: a plain solve is the same solve, and a
        # floor is not used.
        self._prob.setObjective(objective)
        left = self._time_left_s()
        solver = self._solver_class(
            msg=False,
            gapRel=self._mip_gap,
            timeLimit=None if left is None else max(1, math.ceil(left)),
            warmStart=self._warm,
        )
        started = time.perf_counter()
        try:
            self._prob.solve(solver)
        except pulp.PulpSolverError as exc:
            raise SolverError(f"{self.name} failed: {exc}") from None
        elapsed = time.perf_counter() - started
        status: Status = {
            pulp.LpSolutionOptimal: "optimal",
            pulp.LpSolutionIntegerFeasible: "feasible",
            pulp.LpSolutionInfeasible: "infeasible",
            pulp.LpSolutionUnbounded: "unbounded",
        }.get(self._prob.sol_status, "no-solution")
        self._warm = status in ("optimal", "feasible")
        return SolveResult(status, 0.0 if status == "optimal" else None, elapsed)


def open_session(
    prob: pulp.LpProblem,
    solver: str = "highs",
    *,
    mip_gap: float = 1e-6,
    time_limit_s: float | None = None,
) -> SolverSession:
    """Load ``prob`` into ``solver``; ``time_limit_s`` bounds all solves of the session together.

    HiGHS is used through highspy; should that be missing, PuLP's ``HiGHS_CMD`` and then CBC
    (bundled with PuLP) stand in. CPLEX and Gurobi are used only when asked for and installed.
    """
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    if solver not in SOLVERS:
        raise InputError(
            f"unknown solver {solver!r}", field="solver", fix=f"use one of {', '.join(SOLVERS)}"
        )
    if solver == "highs" and pulp.HiGHS(msg=False).available():
        return _HighsSession(prob, mip_gap=mip_gap, deadline=deadline)
    for name, solver_class in _FALLBACKS[solver]:
        if solver_class(msg=False).available():
            return _PulpSession(prob, solver_class, name, mip_gap=mip_gap, deadline=deadline)
    raise DependencyError(
        f"solver {solver!r} is not installed (or not licensed) here; "
        "use --solver highs, or install it so that PuLP can find it"
    )


_CBC = [("cbc", pulp.COIN_CMD), ("cbc", pulp.PULP_CBC_CMD)]
"""CBC on the PATH first; the copy bundled with PuLP (deprecated there) otherwise."""
_FALLBACKS: dict[str, list[tuple[str, type[pulp.LpSolver]]]] = {
    "highs": [("highs-cmd", pulp.HiGHS_CMD), *_CBC],
    "cbc": _CBC,
    "cplex": [("cplex", pulp.CPLEX_PY), ("cplex", pulp.CPLEX_CMD)],
    "gurobi": [("gurobi", pulp.GUROBI), ("gurobi", pulp.GUROBI_CMD)],
}
