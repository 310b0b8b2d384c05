"""From a PlanningProblem to a Plan: formulate once, solve a few times, read back, price.

With both objective weights positive the planner solves four single-objective problems for the
payoff table (min latency, then min energy with latency held at its optimum; the same the other
way round) and then the normalised objective — five solves of one loaded model, four when one
plan is least in both objectives (it is then the optimum for any weights). With a single
weight it solves that objective and breaks ties on the other (two solves), so the plan is never
dominated. The plan's predicted values are :func:`evaluate` of the solution, never the solver's
objective value, and every claimed optimum passes :mod:`qsplit.plan._guard` first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from qsplit.errors import InputError, SolverError
from qsplit.partition import components
from qsplit.plan._baselines import compute_baselines
from qsplit.plan._cost import Evaluation, evaluate, violations
from qsplit.plan._energy_dp import Steps, least_cost
from qsplit.plan._explain import explain_infeasible
from qsplit.plan._guard import Claim, refutation, within_feasibility
from qsplit.plan._milp import Expr, Formulation, build
from qsplit.plan._planfile import Payoff, Plan, Predicted, SolverReport
from qsplit.plan._problem import FP32_LINK, PlanningProblem
from qsplit.plan._solver import (
    TIME_LIMIT_S,
    Floor,
    SolveResult,
    SolverSession,
    open_session,
    run_status,
)
from qsplit.plan._warm import WarmModel

LEX_TOLERANCE = 1e-6
"""Relative slack when holding one objective at its optimum while optimising the other."""


@dataclass
class Solves:
    """Runs solves on a session, checks what they claim and keeps the record the plan reports."""

    problem: PlanningProblem
    form: Formulation
    session: SolverSession
    results: list[SolveResult] = field(default_factory=list)
    on_solve: Callable[[str], None] | None = None
    """Told what each solve is about to minimise, for progress displays."""
    mip_gap: float = 1e-6
    known: list[Evaluation] = field(default_factory=list)
    """Plans known to exist (single-node plans, earlier solutions), for the guard."""
    holds: dict[str, float] = field(default_factory=dict)
    """``latency``/``energy`` → the right-hand side of its lexicographic hold, while held."""
    plain: bool = False
    """Solve with the solver alone, without the session's shortcuts (after a refuted claim)."""
    started: bool = False
    """Whether the caller gave the first solve's start (then no single-node one is made)."""
    walk_steps: Steps = field(default_factory=dict)
    """The two-node walk's moves, found once for all the solves of one problem."""
    deadline: float | None = None
    """``time.monotonic()`` at which the time limit runs out (``None``: no limit)."""
    _priced: tuple[SolveResult, tuple[dict[str, str], tuple[str, ...], Evaluation]] | None = None

    def minimise(
        self,
        objective: Expr,
        what: str,
        price: Callable[[Evaluation], float] | None = None,
        floor: Callable[[float, bool], Floor | None] | None = None,
    ) -> SolveResult:
        """Solve; raise :class:`SolverError` unless a solution was found or it is infeasible.

        With ``price`` (the objective in cost-model terms) an optimum is checked by the guard;
        a refuted one is solved again plainly, and a second refutation raises. ``floor`` gives a
        lower bound proved outside the solver, which the first try asks for when it needs one.
        """
        if self.on_solve is not None:
            self.on_solve(what)
        result = self._solve(objective, what, plain=self.plain, floor=floor)
        if price is not None and result.status == "optimal":
            claim = Claim(what, price, dict(self.holds))
            why = self._refute(objective, claim)
            if why is not None and not self.plain:
                result = self._solve(objective, what, plain=True)
                why = self._refute(objective, claim) if result.status == "optimal" else None
            if why is not None:
                raise SolverError(
                    f"internal error: {why} (the solver alone says the same); "
                    "please report it with the input files"
                )
        if result.has_solution:
            self.known.append(self._read()[2])
        return result

    def _solve(
        self,
        objective: Expr,
        what: str,
        *,
        plain: bool,
        floor: Callable[[float, bool], Floor | None] | None = None,
    ) -> SolveResult:
        result = self.session.solve(objective, plain=plain, floor=None if plain else floor)
        self.results.append(result)
        if result.status in ("unbounded", "no-solution"):
            raise SolverError(
                f"{self.session.name} found no plan while minimising {what} "
                f"(status {result.status}); give it more time with --time-limit"
            )
        return result

    def _refute(self, objective: Expr, claim: Claim) -> str | None:
        evaluation = self._read()[2]
        milp_value = (objective.value() or 0.0, sum(abs(c) for c in objective.values()))
        return refutation(self.problem, claim, evaluation, milp_value, self.known, self.mip_gap)

    def _read(self) -> tuple[dict[str, str], tuple[str, ...], Evaluation]:
        """The solution on the variables, priced once per solve (the guard and the caller)."""
        if self._priced is None or self._priced[0] is not self.results[-1]:
            assignment, quantized, links = self.form.read_assignment()
            evaluation = evaluate(self.problem, assignment, quantized, links=links)
            self._priced = (self.results[-1], (assignment, quantized, evaluation))
        return self._priced[1]

    def solution(
        self, relaxed: str | None = None
    ) -> tuple[dict[str, str], tuple[str, ...], Evaluation]:
        """The solution on the variables, priced by the cost model and checked against it.

        ``relaxed`` names a bound switched off for this solve, which the check then skips.
        """
        assignment, quantized, evaluation = self._read()
        broken = [
            v
            for v in violations(self.problem, evaluation)
            if v.constraint != relaxed and not within_feasibility(self.form, v)
        ]
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
        if rhs is None:
            self.holds.pop(objective, None)
        else:
            self.holds[objective] = rhs


def plan(
    problem: PlanningProblem,
    solver: str = "highs",
    *,
    time_limit_s: float | None = TIME_LIMIT_S,
    mip_gap: float = 1e-6,
    with_baselines: bool = True,
    on_solve: Callable[[str], None] | None = None,
    start: Start | None = None,
    warm: WarmModel | None = None,
) -> Plan:
    """Find the plan minimising ``w_latency·T_norm + w_energy·E_norm`` under the bounds.

    ``time_limit_s`` bounds all solves together (``None``: no limit); a run it stops returns the
    best plan found, with ``solver.status == "time-limit"`` and the gap. ``mip_gap`` is the
    relative gap each solve stops at; ``on_solve`` is called with a short description before
    each solve. ``start`` (a running plan's assignment and quantized blocks) is given to the
    solver as the MIP start of the first solve instead of the best single-node plan: re-planning
    under changed costs begins from the plan that runs, which is feasible unless the bounds
    moved. It is only a hint: the answer is checked by the guard exactly as without it.
    ``warm`` (a :class:`WarmModel` of an earlier problem) supplies the MILP already built when
    ``problem`` differs from that one only in link and node speeds, instead of building it.

    Raises :class:`InfeasibleError` naming the binding bound and its least feasible value, and
    :class:`SolverError` when the solver stops without any plan (e.g. out of time).
    """
    started = time.perf_counter()
    form = (warm.formulation(problem) if warm is not None else None) or build(problem)
    build_time_s = time.perf_counter() - started
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    session = open_session(form.prob, solver, mip_gap=mip_gap, time_limit_s=time_limit_s)
    solves = Solves(problem, form, session, on_solve=on_solve, mip_gap=mip_gap, deadline=deadline)
    if start is not None:
        _suggest_start(solves, start)
    payoff, (assignment, quantized, evaluation) = _optimise(solves)
    baselines = compute_baselines(problem, payoff) if with_baselines else {}
    if _beaten(solves, payoff, evaluation, baselines.values()):
        solves.plain = True  # a baseline beats the claimed optimum: again, the solver alone
        payoff, (assignment, quantized, evaluation) = _optimise(solves)
        why = _beaten(solves, payoff, evaluation, baselines.values())
        if why:
            raise SolverError(f"internal error: {why}; please report it with the input files")

    total = solves.results
    status, gap = run_status(total)
    report = SolverReport(
        name=solves.session.name,
        status=status,
        gap=gap,
        solve_time_s=sum(r.solve_time_s for r in total),
        build_time_s=build_time_s,
        solves=len(total),
        time_limit_s=time_limit_s,
    )
    objective = (
        None
        if payoff is None
        else payoff.objective(
            evaluation.latency_s, evaluation.energy_j, problem.w_latency, problem.w_energy
        )
    )
    link_precision, link_codec = Plan.split_links(evaluation.links)
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
        baselines={name: Predicted.of(ev) for name, ev in baselines.items()},
        input_shapes=dict(problem.graph.model.input_shapes),
        link_precision=link_precision,
        link_codec=link_codec,
    )


def _optimise(solves: Solves) -> tuple[Payoff | None, tuple[dict, tuple, Evaluation]]:
    problem, form = solves.problem, solves.form
    expressions = {"latency": form.latency, "energy": form.energy}
    weights = {"latency": problem.w_latency, "energy": problem.w_energy}

    def lexicographic(first: str, second: str) -> tuple[float, tuple[dict, tuple, Evaluation]]:
        if not solves.results and not solves.started:
            _suggest_single_node(solves, first)
        result = solves.minimise(expressions[first], first, _price(first), _floor(solves, first))
        if result.status == "infeasible":
            raise explain_infeasible(problem, form, solves)
        best = _value(solves.solution()[2], first)
        # A time-limited solution may carry slack in its continuous variables, which values it
        # above its price in the MILP; held at the price, the row would exclude the solution
        # itself and leave the next solve without a plan (seen at a 1 ms limit).
        solves.hold(first, max(best, expressions[first].value() or best))
        solves.minimise(
            expressions[second],
            f"{second} at the least {first}",
            _price(second),
            _floor(solves, second),
        )
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
    if payoff.utopian():
        # The last solve's plan has T = T_min and E = E_min, and every plan has T ≥ T_min and
        # E ≥ E_min: its normalised objective, 0, is the least for any weights. The weighted
        # solve would only have to prove that 0 bound, which took HiGHS seconds on case e.
        return payoff, at_energy_min
    t_scale, e_scale = payoff.scales()
    per_s, per_j = weights["latency"] / t_scale, weights["energy"] / e_scale
    objective = per_s * (form.latency - latency_min) + per_j * (form.energy - energy_min)
    weighted = _weighted(problem, payoff)

    def unshifted(ev: Evaluation) -> float:
        return per_s * ev.latency_s + per_j * ev.energy_j

    shift = per_s * latency_min + per_j * energy_min

    def floor(cutoff: float, near: bool) -> Floor | None:
        found = _walk_floor(solves, unshifted, per_s, per_j, cutoff + shift, near)
        if found is None:  # the walk's cost is per_s·T + per_j·E, without the objective's shift
            return None
        return replace(found, value=found.value - shift)

    solves.minimise(objective, "the weighted objective", weighted, floor)
    candidates = (solves.solution(), at_latency_min, at_energy_min)
    return payoff, tie_break(_weighted(problem, payoff), candidates)


#: Normalised objectives closer than this are a tie (they lie in [0, 1]).
TIE = 1e-9


def tie_break(
    value: Callable[[Evaluation], float], candidates: Sequence[tuple[dict, tuple, Evaluation]]
) -> tuple[dict, tuple, Evaluation]:
    """The best of ``candidates`` by ``value``; a tie goes to the least latency, then energy.

    Which of two equally good plans HiGHS returns depends on float noise in its input. A front
    of two points ties exactly at equal weights (each extreme scores 0.5), and the demo's
    three-tier plan at w = 0.5 flipped between them when a host 1.8× slower measured the same
    emulated links 0.1 % differently. Breaking ties by the costs makes the answer the same.
    """
    best = min(value(c[2]) for c in candidates)
    tied = [c for c in candidates if value(c[2]) <= best + TIE]
    return min(tied, key=lambda c: (c[2].latency_s, c[2].energy_j))


def _price(objective: str) -> Callable[[Evaluation], float]:
    """Latency or energy of a plan: what the payoff solves minimise, for the guard."""
    return lambda evaluation: _value(evaluation, objective)


def _weighted(problem: PlanningProblem, payoff: Payoff) -> Callable[[Evaluation], float]:
    """The normalised objective of a plan, as the final solve minimises it."""
    return lambda ev: payoff.objective(
        ev.latency_s, ev.energy_j, problem.w_latency, problem.w_energy
    )


def _beaten(
    solves: Solves, payoff: Payoff | None, plan: Evaluation, baselines: Iterable[Evaluation]
) -> str | None:
    """Why a feasible baseline refutes the plan's optimality (``None`` when none does).

    The baselines are priced only after the solves (they are chosen with the payoff table), so
    the guard sees them here, against the final objective.
    """
    problem, gap = solves.problem, solves.mip_gap
    if payoff is None:  # the plan is the tie-break solve's: its first objective is held only
        first = "latency" if problem.w_energy == 0 else "energy"
        claim, gap = Claim(first, _price(first), {}), gap + LEX_TOLERANCE
    else:
        claim = Claim("the weighted objective", _weighted(problem, payoff), {})
    return refutation(problem, claim, plan, (claim.price(plan), 0.0), baselines, gap)


@dataclass(frozen=True)
class Start:
    """A plan to start the solver from: block → node, and the blocks run in int8."""

    assignment: Mapping[str, str]
    quantized: Collection[str] = ()


def _suggest_start(solves: Solves, start: Start) -> None:
    """Offer ``start`` as the first solve's MIP start (:class:`InputError` when it names a
    block or node the problem lacks, or quantizes a block that cannot be)."""
    problem, form = solves.problem, solves.form
    blocks, nodes = problem.graph.block_names, set(problem.infra.node_names)
    missing = [b for b in blocks if b not in start.assignment]
    unknown = [f"{b} → {n}" for b, n in start.assignment.items() if (b, n) not in form.x]
    cannot = sorted(set(start.quantized) - set(problem.quantizable))
    if missing or unknown or cannot:
        what = (
            f"{len(missing)} block(s) unassigned, first {missing[0]!r}"
            if missing
            else f"unknown block or node {unknown[0]}"
            if unknown
            else f"block {cannot[0]!r} cannot be quantized"
        )
        raise InputError(
            f"the start plan does not fit the problem: {what}",
            field="start",
            fix=f"start from a plan of this model on nodes {', '.join(sorted(nodes))}",
        )
    evaluation = evaluate(problem, dict(start.assignment), tuple(start.quantized))
    solves.known.append(evaluation)
    values = {var: float(start.assignment[b] == n) for (b, n), var in form.x.items()}
    int8 = set(start.quantized)
    values.update(
        {var: float((b in int8) == (level == "int8")) for (b, level), var in form.z.items()}
    )
    solves.session.suggest(values)
    solves.started = True


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
        solves.known.append(evaluation)
        value = _value(evaluation, objective)
        if not violations(problem, evaluation) and (best is None or value < best[0]):
            best = (value, node)
    if best is None:
        return
    start = {var: float(node == best[1]) for (_, node), var in form.x.items()}
    start.update({var: float(level == "fp32") for (_, level), var in form.z.items()})
    start.update({var: float(mode == FP32_LINK) for (_, mode), var in form.u.items()})
    solves.session.suggest(start)


def _floor(solves: Solves, objective: str) -> Callable[[float, bool], Floor | None]:
    """The walk's floor for a solve of ``latency`` or ``energy`` alone."""
    per_s, per_j = (1.0, 0.0) if objective == "latency" else (0.0, 1.0)
    return partial(_walk_floor, solves, _price(objective), per_s, per_j)


def _walk_floor(
    solves: Solves,
    price: Callable[[Evaluation], float],
    latency: float,
    energy: float,
    cutoff: float = math.inf,
    near: bool = False,
) -> Floor | None:
    """The least ``latency·T + energy·E`` under the bounds from the two-node walk, with its
    plan, when the walk applies (:mod:`qsplit.plan._energy_dp`); searched below the best plan
    already known (``price`` values a plan the same way) and ``cutoff``, the best solution
    of the solve so far; ``near``: that is close to the optimum (no thinned walk first).

    The LP relaxation can meet a binding device-energy budget by mixing two plans, and HiGHS
    took 5–30 s to prove the least-energy bound on the hard budget case; the walk proves it in
    about a second there. A lexicographic hold is one more limit the walk's labels carry.
    """
    problem, form = solves.problem, solves.form
    if solves.plain:
        return None
    hold = next(
        ((float(n == "latency"), float(n == "energy"), rhs) for n, rhs in solves.holds.items()),
        None,
    )
    claim = Claim("the walk's cutoff", price, dict(solves.holds))
    known = [price(ev) for ev in solves.known if claim.admits(problem, ev)]
    found = least_cost(
        problem,
        min([*known, cutoff]),
        latency_weight=latency,
        energy_weight=energy,
        hold=hold,
        steps=solves.walk_steps,
        thin_first=not near,
        time_limit_s=None if solves.deadline is None else solves.deadline - time.monotonic(),
    )
    if found is None:
        return None
    if found.assignment is None:
        return Floor(found.bound)
    plan = {var: float(found.assignment[b] == n) for (b, n), var in form.x.items()}
    int8 = set(found.quantized)
    plan.update(
        {var: float((b in int8) == (level == "int8")) for (b, level), var in form.z.items()}
    )
    plan.update({var: float(mode == FP32_LINK) for (_, mode), var in form.u.items()})
    return Floor(found.bound, plan)


def _value(evaluation: Evaluation, objective: str) -> float:
    return evaluation.latency_s if objective == "latency" else evaluation.energy_j
