"""A claimed optimum is checked by the cost model before it can reach a plan.

Solvers have returned worse plans as "optimal" here: HiGHS 1.15.1 after a restart with columns
fixed by bounds (ERGO-Code/HiGHS#2171), HiGHS 1.16.0 when given a MIP start (docs/solver.md).
And the HiGHS session's own shortcuts — the warm relaxation first, reduced-cost fixing — are
exact only as far as the LP's duals are. So each solve that claims optimality is checked against
what the cost model (:mod:`qsplit.plan._cost`, the definition of every cost) says:

* the MILP's objective at the solution may not be *below* the cost model's price of that plan.
  The formulation is exact for integral ``x``, ``z``, so the MILP's value can only be above
  (a slack continuous variable), never below;
* no plan the planner already knows — the single-node plans, the earlier solves' plans, the
  baselines — may meet the current bounds and holds and still beat the claimed minimum by more
  than the gap.

The planner re-solves a refuted claim with HiGHS alone (no shortcut, no start), and stops with an
internal error if that is refuted too: a wrong plan is never returned silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from qsplit.plan._cost import Evaluation, Violation, violations
from qsplit.plan._milp import Formulation
from qsplit.plan._problem import PlanningProblem

ROUND_OFF = 1e-7
"""Relative difference the guard ignores on top of the MIP gap: the MILP and the cost model add
the same terms in another order (seen: 1e-13 relative), while the defects it exists for were off
by percents."""
SOLVER_FEASIBILITY = 1e-6
"""Primal feasibility tolerance of HiGHS and CBC (both default to 1e-6): a solution's continuous
variables may each be this far from exact, so the MILP may value a plan below the cost model by
up to this much per unit of objective coefficient (seen: 3.5e-7 relative, brute-force seed 74)."""


def within_feasibility(form: Formulation, violation: Violation) -> bool:
    """Whether the solver may return a plan that breaks its bound by ``violation``: each row
    holds within :data:`SOLVER_FEASIBILITY` in the row's own units. That matters on the noise
    row, which bounds ``noise ** power`` (about 1e-3 when the power is 2), so there the tolerance
    is about 1e-3 relative (seen: noise 0.0255799 against a bound of 0.0255745 for the demo's
    device-only plan at 30 % of the noise); elsewhere :func:`violations`' own tolerance is wider.
    """
    value = form.row_upper(violation.constraint, violation.value)
    bound = form.row_upper(violation.constraint, violation.bound)
    return value is not None and bound is not None and value <= bound + SOLVER_FEASIBILITY


@dataclass(frozen=True)
class Claim:
    """What a solve minimised, in cost-model terms, and under which limits."""

    what: str
    price: Callable[[Evaluation], float]
    """The objective of the solve as a function of a plan's evaluation."""
    holds: Mapping[str, float]
    """``latency``/``energy`` → the upper limit a lexicographic hold puts on it."""

    def admits(self, problem: PlanningProblem, evaluation: Evaluation) -> bool:
        """Whether a plan so priced meets the problem's bounds and this solve's holds."""
        if violations(problem, evaluation):
            return False
        values = {"latency": evaluation.latency_s, "energy": evaluation.energy_j}
        return all(values[name] <= limit for name, limit in self.holds.items())


def refutation(
    problem: PlanningProblem,
    claim: Claim,
    solution: Evaluation,
    milp_value: tuple[float, float],
    known: Iterable[Evaluation],
    mip_gap: float,
) -> str | None:
    """Why the claim that ``solution`` minimises ``claim.price`` is wrong; ``None`` if it holds.

    ``milp_value`` is the MILP objective at the solution and the sum of its coefficients'
    magnitudes, which scales what the solver's feasibility tolerance may take off it.
    """
    claimed = claim.price(solution)
    value, weight = milp_value
    if value < claimed - _slack(claimed, value, 0.0) - SOLVER_FEASIBILITY * weight:
        return (
            f"the MILP values its plan for {claim.what} at {value:.10g}, "
            f"the cost model at {claimed:.10g}"
        )
    for other in known:
        if not claim.admits(problem, other):
            continue
        value = claim.price(other)
        if value < claimed - _slack(claimed, value, mip_gap):
            return (
                f"the solver's least {claim.what} {claimed:.10g} is beaten by a known plan "
                f"meeting the same bounds ({value:.10g})"
            )
    return None


def _slack(a: float, b: float, mip_gap: float) -> float:
    return (mip_gap + ROUND_OFF) * max(abs(a), abs(b)) + 1e-12
