"""Pareto fronts over latency, energy and noise, from one built MILP.

The MILP is formulated once (:func:`qsplit.plan._milp.build`) and loaded into one solver
session; every point of the front is a re-solve with another objective or another right-hand
side, so the cost of building (seconds at ONNX-node granularity) is paid once:

1. **Payoff table**: the lexicographic latency optimum and energy optimum give the ranges that
   normalise the objectives (``ΔT``, ``ΔE``).
2. **Weight sweep**: ``ω_T·T/ΔT + (1 − ω_T)·E/ΔE`` for ``points`` values of ω_T in [0, 1].
3. **Noise ε-constraint**: noise bounds from 0 up to the problem's bound (or the largest noise
   seen), which traces what quantization buys; each bound is solved leaning to latency
   (ω_T = 1), at the problem's weights, and leaning to energy (ω_T = 0), so the front has the
   fastest and the most frugal plan at every noise level, the noise-free optima included.
4. **Device-energy ε-constraint**: the same under device-energy budgets from the least
   achievable up to the problem's budget (or the largest seen).

Every objective carries a small augmentation ``ρ·(T/ΔT + E/ΔE + η/Δη)`` (as in AUGMECON), so that
each solution is Pareto-optimal rather than only weakly so, e.g. no block is quantized for
nothing. Each solution is priced by :func:`evaluate`; the front keeps the plans no other found
plan dominates in (latency, energy, noise), which includes the single-objective optima.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsplit._jsonio import read_json, write_json
from qsplit.plan._cost import Evaluation
from qsplit.plan._explain import explain_infeasible
from qsplit.plan._milp import Expr, build
from qsplit.plan._planfile import Payoff, Plan
from qsplit.plan._planner import Solves
from qsplit.plan._problem import PlanningProblem
from qsplit.plan._solver import TIME_LIMIT_S, open_session, run_status

PARETO_KIND = "pareto"
PARETO_SCHEMA_VERSION = 1

AUGMENTATION = 1e-4
"""ρ: weight of the tie-breaking sum of all normalised objectives."""

_REL_TOL = 1e-7
"""Relative tolerance when comparing objective values of two plans (solver precision)."""


@dataclass(frozen=True)
class ParetoPoint:
    """One plan on the front, with how it was found."""

    latency_s: float
    energy_j: float
    device_energy_j: float
    noise: float
    origin: str
    """How it was found: ``latency-optimum``, ``energy-optimum``, ``weights``, ``noise-bound``
    or ``device-energy``."""
    w_latency: float
    """Latency weight of the objective it optimised (energy weight is ``1 − w_latency``)."""
    noise_max: float | None
    """Noise bound in force when it was found."""
    device_energy_budget_j: float | None
    """Device-energy budget in force when it was found."""
    assignment: Mapping[str, str]
    quantized: tuple[str, ...]
    link_precision: Mapping[str, str] = field(default_factory=dict)
    """As :attr:`Plan.link_precision`: tensors sent at fp16/int8."""
    link_codec: Mapping[str, str] = field(default_factory=dict)
    """As :attr:`Plan.link_codec`: tensors compressed on their links."""

    def blocks_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.assignment.values():
            counts[node] = counts.get(node, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_s": self.latency_s,
            "energy_j": self.energy_j,
            "device_energy_j": self.device_energy_j,
            "noise": self.noise,
            "origin": self.origin,
            "w_latency": self.w_latency,
            "w_energy": 1.0 - self.w_latency,
            "noise_max": self.noise_max,
            "device_energy_budget_j": self.device_energy_budget_j,
            "blocks_per_node": self.blocks_per_node(),
            "quantized": list(self.quantized),
            "assignment": dict(self.assignment),
            "link_precision": dict(self.link_precision),
            "link_codec": dict(self.link_codec),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParetoPoint:
        return cls(
            latency_s=float(data["latency_s"]),
            energy_j=float(data["energy_j"]),
            device_energy_j=float(data["device_energy_j"]),
            noise=float(data["noise"]),
            origin=str(data["origin"]),
            w_latency=float(data["w_latency"]),
            noise_max=data.get("noise_max"),
            device_energy_budget_j=data.get("device_energy_budget_j"),
            assignment=dict(data["assignment"]),
            quantized=tuple(data["quantized"]),
            link_precision=dict(data.get("link_precision") or {}),
            link_codec=dict(data.get("link_codec") or {}),
        )


@dataclass(frozen=True)
class ParetoFront:
    """Non-dominated plans in order of latency, and how the sweep went."""

    points: tuple[ParetoPoint, ...]
    payoff: Payoff
    """Single-objective optima that normalise the weighted objectives (as in ``qsplit plan``)."""
    model_sha256: str
    granularity: str
    latency_model: str
    solver: str
    solves: int
    """Solver runs, the payoff table included."""
    candidates: int
    """Distinct plans found before dropping dominated ones."""
    build_time_s: float
    solve_time_s: float
    """Sum of the solver runs."""
    status: str = "optimal"
    """``optimal``, or ``time-limit`` when the limit stopped a solve (its best plan was kept)."""
    gap: float | None = 0.0
    """Largest relative MIP gap of the solves (``None`` if a solver did not report one)."""
    time_limit_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        n = self.payoff
        return {
            "model": {"sha256": self.model_sha256},
            "granularity": self.granularity,
            "latency_model": self.latency_model,
            "solver": {
                "name": self.solver,
                "solves": self.solves,
                "build_time_s": self.build_time_s,
                "solve_time_s": self.solve_time_s,
                "status": self.status,
                "gap": self.gap,
                "time_limit_s": self.time_limit_s,
            },
            "payoff": {
                "latency_min_s": n.latency_min_s,
                "latency_max_s": n.latency_max_s,
                "energy_min_j": n.energy_min_j,
                "energy_max_j": n.energy_max_j,
            },
            "candidates": self.candidates,
            "points": [p.to_dict() for p in self.points],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParetoFront:
        solver, n = data["solver"], data["payoff"]
        return cls(
            points=tuple(ParetoPoint.from_dict(p) for p in data["points"]),
            payoff=Payoff(**{k: float(v) for k, v in n.items()}),
            model_sha256=data["model"]["sha256"],
            granularity=data["granularity"],
            latency_model=data["latency_model"],
            solver=solver["name"],
            solves=int(solver["solves"]),
            candidates=int(data["candidates"]),
            build_time_s=float(solver["build_time_s"]),
            solve_time_s=float(solver["solve_time_s"]),
            status=solver.get("status", "optimal"),
            gap=solver.get("gap", 0.0),
            time_limit_s=solver.get("time_limit_s"),
        )

    def save(self, path: str | Path) -> Path:
        return write_json(path, PARETO_KIND, PARETO_SCHEMA_VERSION, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ParetoFront:
        return cls.from_dict(read_json(path, PARETO_KIND, (PARETO_SCHEMA_VERSION,)))


Progress = Callable[[int, int], None]
"""Called with (solves done, solves planned) after each solve."""


def pareto_front(
    problem: PlanningProblem,
    points: int = 8,
    *,
    solver: str = "highs",
    time_limit_s: float | None = TIME_LIMIT_S,
    progress: Progress | None = None,
) -> ParetoFront:
    """Sweep weights and ε-bounds over one built MILP; keep the non-dominated plans.

    ``points`` is the number of steps of each sweep (weights, noise bounds, device-energy
    bounds), so about ``7·points + 2`` solves; ``time_limit_s`` bounds them all together
    (``None``: no limit), and a front it cuts short says so in ``status``. Raises
    :class:`InfeasibleError` when the problem's own bounds admit no plan.
    """
    sweep = _Sweep(problem, max(points, 2), solver, time_limit_s, progress)
    found = sweep.run()
    front = _non_dominated(found)
    status, gap = run_status(sweep.solves.results)
    return ParetoFront(
        points=tuple(sorted(front, key=lambda p: (p.latency_s, p.energy_j, p.noise))),
        payoff=sweep.payoff,
        model_sha256=problem.graph.model.sha256,
        granularity=problem.graph.granularity,
        latency_model=problem.latency_model,
        solver=sweep.solves.session.name,
        solves=len(sweep.solves.results),
        candidates=len(found),
        build_time_s=sweep.build_time_s,
        solve_time_s=sum(r.solve_time_s for r in sweep.solves.results),
        status=status,
        gap=gap,
        time_limit_s=time_limit_s,
    )


class _Sweep:
    """The solves of one front, sharing one formulation and one solver session."""

    def __init__(
        self,
        problem: PlanningProblem,
        points: int,
        solver: str,
        time_limit_s: float | None,
        progress: Progress | None,
    ) -> None:
        self.problem = problem
        self.points = points
        self.progress = progress
        started = time.perf_counter()
        form = build(problem)
        self.build_time_s = time.perf_counter() - started
        form.prob.setObjective(form.latency)
        session = open_session(form.prob, solver, time_limit_s=time_limit_s)
        self.form = form
        self.solves = Solves(problem, form, session)
        self.planned = 4 + points + 3 * points + 1 + 3 * (points - 1)
        self.payoff = Payoff(0.0, 1.0, 0.0, 1.0)
        bound = problem.bounds.noise_max
        self.noise_range = bound if bound else 1.0

    def run(self) -> list[ParetoPoint]:
        form, session, bounds = self.form, self.solves.session, self.problem.bounds
        fast = self._lexicographic("latency", "energy", "latency-optimum")
        frugal = self._lexicographic("energy", "latency", "energy-optimum")
        self.payoff = Payoff(
            latency_min_s=fast.latency_s,
            latency_max_s=frugal.latency_s,
            energy_min_j=frugal.energy_j,
            energy_max_j=fast.energy_j,
        )
        found = [fast, frugal]
        for w in _steps(0.0, 1.0, self.points):
            found += self._solve(self._weighted(w), "weights", w)

        w_problem = self.problem.w_latency / (self.problem.w_latency + self.problem.w_energy)
        leanings = sorted({1.0, w_problem, 0.0}, reverse=True)
        top_noise = bounds.noise_max if bounds.noise_max is not None else _largest(found, "noise")
        if top_noise > 0:
            for level in _steps(0.0, top_noise, self.points):
                session.set_upper(form.bound_rows["noise"], form.row_upper("noise", level))
                for w in leanings:
                    found += self._solve(self._weighted(w), "noise-bound", w, level)
            session.set_upper(form.bound_rows["noise"], form.row_upper("noise", bounds.noise_max))

        least = self._solve(form.device_energy + self._augmentation(), "device-energy", w_problem)
        found += least
        budget = bounds.device_energy_budget_j
        top = budget if budget is not None else _largest(found, "device_energy_j")
        if least and least[0].device_energy_j < top:
            row = form.bound_rows["device-energy"]
            for level in _steps(least[0].device_energy_j, top, self.points)[1:]:
                session.set_upper(row, level)
                for w in leanings:
                    found += self._solve(self._weighted(w), "device-energy", w, budget_j=level)
            session.set_upper(row, budget)
        return found

    def _lexicographic(self, first: str, second: str, origin: str) -> ParetoPoint:
        """Optimise ``first``; then ``second`` with ``first`` held at its optimum."""
        w_latency = 1.0 if first == "latency" else 0.0
        optimum = self._solve(getattr(self.form, first), origin, w_latency)
        if not optimum:
            raise explain_infeasible(self.problem, self.form, self.solves)
        value = optimum[0].latency_s if first == "latency" else optimum[0].energy_j
        self.solves.hold(first, value)
        tied = self._solve(getattr(self.form, second) + self._noise_tiebreak(), origin, w_latency)
        self.solves.hold(first, None)
        return (tied or optimum)[0]

    def _weighted(self, w_latency: float) -> Expr:
        t_scale, e_scale = self.payoff.scales()
        return (
            w_latency / t_scale * self.form.latency
            + (1.0 - w_latency) / e_scale * self.form.energy
            + self._augmentation()
        )

    def _augmentation(self) -> Expr:
        t_scale, e_scale = self.payoff.scales()
        return (
            AUGMENTATION * (self.form.latency / t_scale + self.form.energy / e_scale)
            + self._noise_tiebreak()
        )

    def _noise_tiebreak(self) -> Expr:
        return AUGMENTATION / self.form.row_upper("noise", self.noise_range) * self.form.noise

    def _solve(
        self,
        objective: Expr,
        origin: str,
        w_latency: float,
        noise_max: float | None = None,
        budget_j: float | None = None,
    ) -> list[ParetoPoint]:
        """Solve; the plan as a one-element list, or an empty list when there is none."""
        result = self.solves.minimise(objective, f"a {origin} point")
        if self.progress is not None:
            self.progress(len(self.solves.results), self.planned)
        if not result.has_solution:
            return []
        assignment, quantized, evaluation = self.solves.solution()
        bounds = self.problem.bounds
        return [
            _point(
                evaluation,
                origin,
                w_latency,
                bounds.noise_max if noise_max is None else noise_max,
                bounds.device_energy_budget_j if budget_j is None else budget_j,
                assignment,
                quantized,
            )
        ]


def _point(
    evaluation: Evaluation,
    origin: str,
    w_latency: float,
    noise_max: float | None,
    budget_j: float | None,
    assignment: dict[str, str],
    quantized: tuple[str, ...],
) -> ParetoPoint:
    link_precision, link_codec = Plan.split_links(evaluation.links)
    return ParetoPoint(
        latency_s=evaluation.latency_s,
        energy_j=evaluation.energy_j,
        device_energy_j=evaluation.device_energy_j,
        noise=evaluation.noise,
        origin=origin,
        w_latency=w_latency,
        noise_max=noise_max,
        device_energy_budget_j=budget_j,
        assignment=assignment,
        quantized=quantized,
        link_precision=link_precision,
        link_codec=link_codec,
    )


def dominates(a: ParetoPoint, b: ParetoPoint) -> bool:
    """``a`` is no worse than ``b`` in latency, energy and noise, and better in one."""
    pairs = ((a.latency_s, b.latency_s), (a.energy_j, b.energy_j), (a.noise, b.noise))
    no_worse = all(x <= y + _tolerance(y) for x, y in pairs)
    better = any(x < y - _tolerance(y) for x, y in pairs)
    return no_worse and better


def _non_dominated(found: list[ParetoPoint]) -> list[ParetoPoint]:
    distinct: dict[tuple[float, float, float], ParetoPoint] = {}
    for p in found:
        key = (round(p.latency_s, 9), round(p.energy_j, 9), round(p.noise, 9))
        distinct.setdefault(key, p)
    unique = list(distinct.values())
    return [p for p in unique if not any(dominates(q, p) for q in unique if q is not p)]


def _steps(low: float, high: float, count: int) -> list[float]:
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def _largest(found: list[ParetoPoint], attribute: str) -> float:
    return max((getattr(p, attribute) for p in found), default=0.0)


def _tolerance(value: float) -> float:
    return _REL_TOL * max(1.0, abs(value))
