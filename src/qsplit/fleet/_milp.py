"""The fleet MILP: one candidate per class and one batch size per shared node, jointly.

Variables (all rows are written on both sides where a coefficient may be negative, so every
linearisation is exact for 0/1 values):

========================  =========  ===========================================================
``x[c,p]``                binary     class ``c`` runs candidate ``p``; ``Σ_p x = 1``
``y[k,b]``                binary     shared node ``k`` batches ``b`` requests; ``Σ_b y = 1``
``w[c,p,k,b]``            [0, 1]     ``x[c,p]·y[k,b]`` for the nodes ``p`` uses (McCormick)
``ρ[k,b]``                ≥ 0        ``k``'s utilisation when ``y[k,b]``: ≥ its load, ≤ ρmax·y
``θ[k,b]``                ≥ 0        requests waiting at ``k``: above every tangent of the
                                     convex curve in ``ρ[k,b]`` (scaled by ``y``: a perspective)
``a[g]``                  [0, 1]     component ``g`` is used by some class
``v[g,b]``                ≥ 0        ``a[g]·y[k,b]``: a batch of ``g`` is filling
``u``                     ≥ 0        the largest utilisation (throughput objective only)
========================  =========  ===========================================================

The objective is :func:`qsplit.fleet._model.planning_value` term by term (Little's law turns
each node's waiting into ``θ`` and each component's filling batch into ``(b − 1)/2``
requests waiting), so the only approximation is the tangents' (below the curve, exact at the
points); ``planning_value`` says how it bounds batches that close at the time-out. Solved with
HiGHS through :func:`scipy.optimize.milp`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from qsplit.errors import InfeasibleError, SolverError
from qsplit.fleet._model import (
    P95_WAIT_FACTOR,
    Choice,
    FleetProblem,
    device_wait,
    planning_load,
)
from qsplit.fleet._queueing import tangents

MIP_GAP = 1e-7


@dataclass
class _Model:
    """Columns and rows, built incrementally."""

    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    rows: list[tuple[dict[int, float], float, float]] = field(default_factory=list)

    def var(self, low: float = 0.0, high: float = np.inf, integer: bool = False) -> int:
        self.lower.append(low)
        self.upper.append(high)
        self.integer.append(int(integer))
        self.cost.append(0.0)
        return len(self.cost) - 1

    def row(self, coefs: dict[int, float], low: float = -np.inf, high: float = np.inf) -> None:
        self.rows.append((coefs, low, high))

    def solve(self, cost: list[float], time_limit_s: float | None) -> tuple[np.ndarray, bool]:
        """The solution and whether it is proved optimal (else the time limit stopped it)."""
        # imported here: every qsplit command imports this package, only planning needs scipy
        from scipy.optimize import Bounds as VarBounds
        from scipy.optimize import LinearConstraint, milp
        from scipy.sparse import coo_array

        r, c, v = [], [], []
        for i, (coefs, _, _) in enumerate(self.rows):
            for j, value in coefs.items():
                r.append(i)
                c.append(j)
                v.append(value)
        matrix = coo_array((v, (r, c)), shape=(len(self.rows), len(cost))).tocsr()
        options: dict[str, float] = {"mip_rel_gap": MIP_GAP}
        if time_limit_s is not None:
            options["time_limit"] = time_limit_s
        result = milp(
            np.array(cost),
            integrality=np.array(self.integer),
            bounds=VarBounds(np.array(self.lower), np.array(self.upper)),
            constraints=LinearConstraint(
                matrix, [low for _, low, _ in self.rows], [high for _, _, high in self.rows]
            ),
            options=options,
        )
        if result.status == 2:
            raise InfeasibleError(
                "no choice of plans keeps every shared node and device under the utilisation bound",
                constraint="utilisation",
            )
        if result.x is None:
            raise SolverError(
                f"the fleet MILP stopped without a solution ({result.message}); "
                "give it more time (time_limit_s)"
            )
        return np.asarray(result.x), result.status == 0


@dataclass(frozen=True)
class Solution:
    choice: Choice
    status: str
    """``optimal``, or ``time-limit``: the best choice found when the limit stopped a solve."""
    solve_time_s: float
    columns: int
    rows: int


def solve_fleet(problem: FleetProblem, time_limit_s: float | None = 60.0) -> Solution:
    """The choice minimising the planning objective (lexicographically after the bottleneck
    utilisation for the throughput objective)."""
    import scipy.optimize  # noqa: F401  (first import: seconds on a busy VM, not solve time)

    started = time.perf_counter()
    m = _Model()
    fleet = problem.fleet
    rmax = problem.utilisation_max
    total = problem.total_rate_hz or 1.0
    t_ref, e_ref = problem.scales
    k_t = problem.w_latency / total / t_ref
    k_e = problem.w_energy / total / e_ref
    factor = P95_WAIT_FACTOR if problem.objective == "p95" else 1.0
    cost: dict[int, float] = {}

    y = {(k, b): m.var(0, 1, integer=True) for k in fleet.shared_names for b in problem.batch_sizes}
    for k in fleet.shared_names:
        m.row({y[k, b]: 1.0 for b in problem.batch_sizes}, 1, 1)
    rho = {kb: m.var(0, rmax) for kb in y}
    theta = {kb: m.var() for kb in y}
    for (k, b), col in rho.items():
        m.row({col: 1.0, y[k, b]: -rmax}, high=0)
        cost[theta[k, b]] = k_t * factor
        for slope, intercept in tangents(fleet.replicas(k), rmax):
            m.row({theta[k, b]: 1.0, col: -slope, y[k, b]: -intercept}, low=0)
    load: dict[tuple[str, int], dict[int, float]] = {kb: {} for kb in y}
    users: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    x: dict[tuple[str, int], int] = {}
    u = m.var() if problem.objective == "throughput" else None
    for c in fleet.classes:
        row: dict[int, float] = {}
        device_row: dict[int, float] = {}
        for p, cand in enumerate(problem.candidates[c.name]):
            device_rho = cand.device_utilisation(c.rate_hz) if c.count else 0.0
            if device_rho > rmax:
                continue
            col = x[c.name, p] = m.var(0, 1, integer=True)
            row[col] = 1.0
            device_row[col] = -device_rho
            wait = device_wait(cand, c.rate_hz).mean_s if c.count else 0.0
            rate = c.total_rate_hz
            cost[col] = rate * (k_t * (cand.latency_s + factor * wait) + k_e * cand.energy_j)
            for i, work in enumerate(cand.work):
                after = cand.work[i - 1] if i else None
                users.setdefault(work.key, []).append(col)
                for b in problem.batch_sizes:
                    w = m.var(0, 1)
                    m.row({w: 1.0, col: -1.0}, high=0)
                    m.row({w: 1.0, y[work.node, b]: -1.0}, high=0)
                    m.row({w: 1.0, col: -1.0, y[work.node, b]: -1.0}, low=-1)
                    load[work.node, b][w] = planning_load(problem, work, rate, b, after)
                    cost[w] = rate * (
                        k_t * (b - 1) * work.per_item_s
                        + k_e * (work.energy_j(b) - work.energy_j(1))
                    )
        if not row:
            raise InfeasibleError(
                f"every candidate plan of class {c.name!r} keeps its devices busier than the "
                f"utilisation bound {rmax:g} (requests × device compute time per second)",
                constraint=f"device:{c.name}",
            )
        m.row(row, 1, 1)
        if u is not None:
            m.row({u: 1.0, **device_row}, low=0)
    for (k, b), coefs in load.items():
        m.row({**coefs, rho[k, b]: -1.0}, high=0)
    for (k, _), cols in users.items():
        a = m.var(0, 1)
        for col in cols:
            m.row({a: 1.0, col: -1.0}, low=0)
        for b in problem.batch_sizes:
            if b > 1:
                v = m.var()
                m.row({v: 1.0, a: -1.0, y[k, b]: -1.0}, low=-1)
                cost[v] = k_t * factor * (b - 1) / 2
    weighted = [cost.get(i, 0.0) for i in range(len(m.cost))]
    if u is not None:
        for k in fleet.shared_names:
            m.row({u: 1.0, **{rho[k, b]: -1.0 for b in problem.batch_sizes}}, low=0)
        first = [0.0] * len(m.cost)
        first[u] = 1.0
        values, proved = m.solve(first, time_limit_s)
        m.upper[u] = values[u] * (1 + 1e-6) + 1e-9
    else:
        proved = True
    values, last = m.solve(weighted, time_limit_s)
    status = "optimal" if proved and last else "time-limit"
    picks = {
        c.name: max((p for (name, p) in x if name == c.name), key=lambda p: values[x[c.name, p]])
        for c in fleet.classes
    }
    used = {w.node for c in fleet.classes for w in problem.candidates[c.name][picks[c.name]].work}
    # a node no chosen plan uses may carry any batch size at no cost: 1 is what to start it with
    batch = {
        k: max(problem.batch_sizes, key=lambda b: values[y[k, b]]) if k in used else 1
        for k in fleet.shared_names
    }
    choice = Choice(picks, batch)
    return Solution(choice, status, time.perf_counter() - started, len(m.cost), len(m.rows))
