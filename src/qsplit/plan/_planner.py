"""From a PlanningProblem to a Plan: formulate once, solve a few times, read back, price.

With both objective weights positive the planner solves four single-objective problems for the
payoff table (min latency, then min energy with latency held at its optimum; the same the other
way round) and then the normalised objective — five solves of one loaded model. With a single
weight it solves that objective and breaks ties on the other (two solves), so the plan is never
dominated. The plan's predicted values are :func:`evaluate` of the solution, never the solver's
objective value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from qsplit.errors import InputError, SolverError
from qsplit.partition import components
from qsplit.plan._baselines import compute_baselines
from qsplit.plan._cost import Evaluation, evaluate, violations
from qsplit.plan._explain import explain_infeasible
from qsplit.plan._milp import Expr, Formulation, build
from qsplit.plan._planfile import Payoff, Plan, Predicted, SolverReport
from qsplit.plan._problem import PlanningProblem
from qsplit.plan._solver import SolveResult, SolverSession, open_session

LEX_TOLERANCE = 1e-6
"""Relative slack when holding one objective at its optimum while optimising the other."""


@dataclass
class Solves:
    """Runs solves on a session and keeps the record the plan reports."""

    problem: PlanningProblem
    form: Formulation
    session: SolverSession
    results: list[SolveResult] = field(default_factory=list)
    on_solve: Callable[[str], None] | None = None
    """Told what each solve is about to minimise, for progress displays."""

    def minimise(self, objective: Expr, what: str) -> SolveResult:
        """Solve; raise :class:`SolverError` unless a solution was found or it is infeasible."""
        if self.on_solve is not None:
            self.on_solve(what)
        result = self.session.solve(objective)
        self.results.append(result)
        if result.status in ("unbounded", "no-solution"):
            raise SolverError(
                f"{self.session.name} found no plan while minimising {what} "
                f"(status {result.status}); give it more time with --time-limit"
            )
        return result

    def solution(
        self, relaxed: str | None = None
    ) -> tuple[dict[str, str], tuple[str, ...], Evaluation]:
        """The solution on the variables, priced by the cost model and checked against it.

        ``relaxed`` names a bound switched off for this solve, which the check then skips.
        """
        assignment, quantized = self.form.read_assignment()
        evaluation = evaluate(self.problem, assignment, quantized)
        broken = [v for v in violations(self.problem, evaluation) if v.constraint != relaxed]
        if broken:  # the MILP and the cost model disagree: a bug, not a user error
            v = broken[0]
            raise SolverError(
                f"internal error: the solver's plan breaks {v.constraint} ({v.value:.6g} > "
                f"{v.bound:.6g}) under the cost model; please report it with the input files"
            )
        return assignment, quantized, evaluation

    def hold(self, objective: str, value: float | None) -> None:
        """Hold ``objective`` at most ``value`` (plus tolerance); ``None`` frees it."""
        rhs = None if value is None else value + LEX_TOLERANCE * max(abs(value), 1e-3)
        self.session.set_upper(self.form.lex_rows[objective], rhs)


def plan(
    problem: PlanningProblem,
    solver: str = "highs",
    *,
    time_limit_s: float | None = None,
    mip_gap: float = 1e-6,
    with_baselines: bool = True,
    on_solve: Callable[[str], None] | None = None,
) -> Plan:
    """Find the plan minimising ``w_latency·T_norm + w_energy·E_norm`` under the bounds.

    ``time_limit_s`` bounds all solves together; ``mip_gap`` is the relative gap each solve
    stops at; ``on_solve`` is called with a short description before each solve.

    Raises :class:`InfeasibleError` naming the binding bound and its least feasible value, and
    :class:`SolverError` when the solver stops without any plan (e.g. out of time).
    """
    started = time.perf_counter()
    form = build(problem)
    build_time_s = time.perf_counter() - started
    session = open_session(form.prob, solver, mip_gap=mip_gap, time_limit_s=time_limit_s)
    solves = Solves(problem, form, session, on_solve=on_solve)
    payoff, (assignment, quantized, evaluation) = _optimise(solves)

    total = solves.results
    status = "optimal" if all(r.status == "optimal" for r in total) else "feasible"
    report = SolverReport(
        name=solves.session.name,
        status=status,
        gap=total[-1].gap,
        solve_time_s=sum(r.solve_time_s for r in total),
        build_time_s=build_time_s,
        solves=len(total),
    )
    objective = (
        None
        if payoff is None
        else payoff.objective(
            evaluation.latency_s, evaluation.energy_j, problem.w_latency, problem.w_energy
        )
    )
    return Plan(
        model_sha256=problem.graph.model.sha256,
        assignment=assignment,
        quantized=tuple(b for b in problem.graph.block_names if b in set(quantized)),
        components=components(problem.graph, assignment),
        predicted=Predicted.of(evaluation),
        memory_bytes=dict(evaluation.memory_bytes),
        w_latency=problem.w_latency,
        w_energy=problem.w_energy,
        latency_model=problem.latency_model,
        bounds=problem.bounds,
        solver=report,
        payoff=payoff,
        objective=objective,
        baselines=_baselines(problem, payoff) if with_baselines else {},
    )


def _optimise(solves: Solves) -> tuple[Payoff | None, tuple[dict, tuple, Evaluation]]:
    problem, form = solves.problem, solves.form
    expressions = {"latency": form.latency, "energy": form.energy}
    weights = {"latency": problem.w_latency, "energy": problem.w_energy}

    def lexicographic(first: str, second: str) -> tuple[float, tuple[dict, tuple, Evaluation]]:
        if not solves.results:
            _suggest_single_node(solves, first)
        result = solves.minimise(expressions[first], first)
        if result.status == "infeasible":
            raise explain_infeasible(problem, form, solves)
        best = _value(solves.solution()[2], first)
        solves.hold(first, best)
        solves.minimise(expressions[second], f"{second} at the least {first}")
        solution = solves.solution()
        solves.hold(first, None)
        return best, solution

    if weights["energy"] == 0 or weights["latency"] == 0:
        first = "latency" if weights["energy"] == 0 else "energy"
        second = "energy" if first == "latency" else "latency"
        return None, lexicographic(first, second)[1]

    latency_min, at_latency_min = lexicographic("latency", "energy")
    energy_min, at_energy_min = lexicographic("energy", "latency")
    payoff = Payoff(
        latency_min_s=latency_min,
        latency_max_s=at_energy_min[2].latency_s,
        energy_min_j=energy_min,
        energy_max_j=at_latency_min[2].energy_j,
    )
    t_scale, e_scale = payoff.scales()
    objective = (weights["latency"] / t_scale) * (form.latency - latency_min) + (
        weights["energy"] / e_scale
    ) * (form.energy - energy_min)
    solves.minimise(objective, "the weighted objective")
    return payoff, solves.solution()


def _suggest_single_node(solves: Solves, objective: str) -> None:
    """Start the first solve from the best single-node fp32 plan that meets the bounds, if any.

    Without a starting point a large time-limited solve can stop before finding any plan.
    """
    problem, form = solves.problem, solves.form
    best: tuple[float, str] | None = None
    for node in problem.infra.node_names:
        try:
            evaluation = evaluate(problem, dict.fromkeys(problem.graph.block_names, node))
        except InputError:  # the model's inputs or outputs would need a missing route
            continue
        value = _value(evaluation, objective)
        if not violations(problem, evaluation) and (best is None or value < best[0]):
            best = (value, node)
    if best is None:
        return
    start = {var: float(node == best[1]) for (_, node), var in form.x.items()}
    start.update({var: float(level == "fp32") for (_, level), var in form.z.items()})
    solves.session.suggest(start)


def _value(evaluation: Evaluation, objective: str) -> float:
    return evaluation.latency_s if objective == "latency" else evaluation.energy_j


def _baselines(problem: PlanningProblem, payoff: Payoff | None) -> Mapping[str, Predicted]:
    """The baselines priced by the same cost model, chosen with the plan's normalised objective."""
    return {name: Predicted.of(ev) for name, ev in compute_baselines(problem, payoff).items()}
