"""Why no plan exists: which bound binds, and the least value of it that admits a plan.

Each active bound is switched off in turn, keeping the others, and the quantity it limits is
minimised over the same loaded model. A bound whose relaxation restores feasibility is binding,
and that minimum is its least feasible value ("device energy budget 0.3 J is infeasible; the least
feasible is 0.52 J"). The minimum is re-priced with the cost model, so it is the exact value a
plan would report.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qsplit.errors import InfeasibleError
from qsplit.plan._cost import Evaluation

if TYPE_CHECKING:
    from qsplit.plan._milp import Formulation
    from qsplit.plan._planner import Solves
    from qsplit.plan._problem import PlanningProblem

_FLAGS = {"noise": "--noise-max", "device-energy": "--energy-budget"}


def explain_infeasible(
    problem: PlanningProblem, form: Formulation, solves: Solves
) -> InfeasibleError:
    """The error to raise for an infeasible ``problem`` (leaves the bounds as they were)."""
    limits = _active_limits(problem)
    findings: list[tuple[str, float, float]] = []
    for name, limit in limits.items():
        row = form.bound_rows[name]
        solves.session.set_upper(row, None)
        result = solves.minimise(form.quantity(name), f"the least feasible {name}")
        if result.has_solution:
            findings.append((name, limit, _quantity(solves.solution(relaxed=name)[2], name)))
        solves.session.set_upper(row, form.row_upper(name, limit))

    if findings:
        parts = [
            f"{_describe(name, limit)} is infeasible; the least feasible is "
            f"{_show(name, least)}{_hint(name, least)}"
            for name, limit, least in findings
        ]
        name, _, least = findings[0]
        joined = "; or ".join(parts) if len(parts) > 1 else parts[0]
        kept = " (keeping the other bounds)" if len(limits) > 1 else ""
        return InfeasibleError(
            f"no plan meets the bounds: {joined}{kept}", constraint=name, least_feasible=least
        )

    for row in form.bound_rows.values():
        solves.session.set_upper(row, None)
    result = solves.minimise(form.latency, "latency without bounds")
    for name, limit in limits.items():
        solves.session.set_upper(form.bound_rows[name], form.row_upper(name, limit))
    if result.has_solution:
        listed = ", ".join(_describe(n, v) for n, v in limits.items())
        return InfeasibleError(
            f"no plan meets the bounds together ({listed}), and relaxing any single one is not "
            "enough; relax several of them"
        )
    return InfeasibleError(
        "no placement exists even without bounds: some tensor would need a route the "
        "infrastructure lacks. Add the missing links (or `symmetric: true`) to the infra file",
        constraint="links",
    )


def _active_limits(problem: PlanningProblem) -> dict[str, float]:
    bounds = problem.bounds
    limits: dict[str, float] = {}
    if bounds.noise_max is not None and problem.noise_variables:
        limits["noise"] = bounds.noise_max
    if bounds.device_energy_budget_j is not None:
        limits["device-energy"] = bounds.device_energy_budget_j
    if bounds.memory:
        for node in problem.infra.nodes:
            limits[f"memory:{node.name}"] = float(node.memory_bytes)
    return limits


def _quantity(evaluation: Evaluation, name: str) -> float:
    if name == "noise":
        return evaluation.noise
    if name == "device-energy":
        return evaluation.device_energy_j
    return evaluation.memory_bytes[name.removeprefix("memory:")]


def _describe(name: str, limit: float) -> str:
    if name == "noise":
        return f"noise bound {limit:.4g}"
    if name == "device-energy":
        return f"device energy budget {limit:.4g} J"
    return f"memory of node {name.removeprefix('memory:')!r} ({_bytes(limit)})"


def _show(name: str, value: float) -> str:
    if name == "noise":
        return f"{_ceil4(value):.4g}"
    if name == "device-energy":
        return f"{_ceil4(value):.4g} J"
    return _bytes(value)


def _hint(name: str, value: float) -> str:
    flag = _FLAGS.get(name)
    if flag:
        return f" (pass {flag} {_ceil4(value):.4g} or more)"
    return f" (raise memory_bytes of {name.removeprefix('memory:')!r} in the infra file)"


def _ceil4(value: float) -> float:
    """Round up to 4 significant digits, so the number shown is itself feasible."""
    if value <= 0:
        return value
    scale = 10 ** (math.floor(math.log10(value)) - 3)
    return math.ceil(value / scale - 1e-9) * scale


def _bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{math.ceil(value / size * 100) / 100:.2f} {unit}"
    return f"{math.ceil(value)} B"
