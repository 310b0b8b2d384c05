"""Re-planning without building the MILP again, when only link speeds and node speeds changed.

Re-planning under observed costs (:mod:`qsplit.adapt`) solves the same problem again and again
with other link bandwidths and latencies and other node speed factors; building the MILP in
PuLP was half of each re-plan. Every coefficient of the model is an affine function of

* each node's speed factor ``s_k`` (its profile's block times × ``s_k``: compute terms and the
  energy they cost), and
* each link's seconds per byte ``1/b`` and latency ``ℓ`` (every route's transfer time is the
  sum of its hops' ``ℓ + bytes/b``),

with everything else fixed. So :class:`WarmModel` builds the model once for the running
problem and once more per parameter with that parameter moved, and keeps, for every
coefficient and constant that moves at all, its base value and its slope in each parameter.
For a problem that differs from the base only in those parameters it sets those numbers in the
built model — a matrix–vector product and a few thousand assignments — and hands the planner
that model instead of a new one. Anything else that differs (a node down, other bounds, other
weights, a profile that is not the base one scaled) gets a fresh build: the planner stays exact
either way, and the tests check that an updated model gives the plan a fresh build gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from qsplit.infra import Link
from qsplit.plan._milp import Expr, Formulation, build
from qsplit.plan._problem import PlanningProblem
from qsplit.profile import ComputeProfile

Container = Expr
Key = tuple[int, str | None]
"""(container index, variable name; ``None`` for the container's constant)."""


@dataclass(frozen=True)
class _Parameters:
    """Where a problem stands in the warm model's parameter space."""

    values: np.ndarray


class WarmModel:
    """The MILP of ``problem``, re-usable for the same problem under other link and node
    speeds (see the module docstring). Not thread-safe: one planner at a time uses it."""

    def __init__(self, problem: PlanningProblem) -> None:
        self.base = problem
        self._links = tuple(sorted((lk.source, lk.target) for lk in problem.infra.links))
        self._nodes = problem.infra.node_names
        self._form = build(problem)
        self._containers = _containers(self._form)
        self._rows_built = {
            row.name: row.constant
            for row in [*self._form.bound_rows.values(), *self._form.lex_rows.values()]
        }
        base = _coefficients(self._containers)
        at = self._parameters(problem)
        assert at is not None
        moved = []
        for index in range(len(at.values)):
            step = _step(at.values[index])
            point = at.values.copy()
            point[index] += step
            coefficients = _coefficients(_containers(build(self._problem_at(point))))
            moved.append((coefficients, step))
        keys = sorted(
            {k for c, _ in moved for k in c} | set(base),
            key=lambda k: (k[0], k[1] or ""),
        )
        slopes = np.array(
            [[(c.get(k, 0.0) - base.get(k, 0.0)) / step for c, step in moved] for k in keys]
        ).reshape(len(keys), len(moved))
        varying = np.flatnonzero(np.any(slopes != 0.0, axis=1))
        self._keys = [keys[i] for i in varying]
        self._base_values = np.array([base.get(keys[i], 0.0) for i in varying])
        self._slopes = slopes[varying]
        self._at = at.values
        variables = self._form.prob.variablesDict()
        self._targets = [
            (self._containers[c], None if name is None else variables[name])
            for c, name in self._keys
        ]

    def formulation(self, problem: PlanningProblem) -> Formulation | None:
        """The built model set to ``problem``'s link and node speeds; ``None`` when
        ``problem`` differs from the base in anything else (build it afresh then)."""
        at = self._parameters(problem)
        if at is None:
            return None
        values = self._base_values + self._slopes @ (at.values - self._at)
        for (container, variable), value in zip(self._targets, values, strict=True):
            if variable is None:
                container.constant = float(value)
            else:
                container[variable] = float(value)
        for row in [*self._form.bound_rows.values(), *self._form.lex_rows.values()]:
            row.constant = self._rows_built[row.name]  # a solve's holds moved them
        return self._form

    def _parameters(self, problem: PlanningProblem) -> _Parameters | None:
        """Node speed factors, then each link's seconds per byte and latency; ``None`` when
        ``problem`` is not the base at other such values."""
        base = self.base
        if (
            problem.graph is not base.graph
            or replace(problem, infra=base.infra, profiles=base.profiles) != base
            or problem.infra.node_names != self._nodes
            or tuple(sorted((lk.source, lk.target) for lk in problem.infra.links)) != self._links
            or replace(problem.infra, links=base.infra.links) != base.infra
        ):
            return None
        factors = []
        for node in self._nodes:
            factor = _factor(base.profiles[node], problem.profiles[node])
            if factor is None:
                return None
            factors.append(factor)
        links = []
        for source, target in self._links:
            link = problem.infra.link(source, target)
            if not math.isfinite(link.bandwidth_bytes_per_s) or link.bandwidth_bytes_per_s <= 0:
                return None
            links += [1.0 / link.bandwidth_bytes_per_s, link.latency_s]
        return _Parameters(np.array(factors + links))

    def _problem_at(self, point: np.ndarray) -> PlanningProblem:
        """The base problem at ``point`` in parameter space (to measure slopes)."""
        base = self.base
        count = len(self._nodes)
        profiles = {
            node: replace(base.profiles[node], blocks=base.profiles[node].blocks_scaled(point[i]))
            for i, node in enumerate(self._nodes)
        }
        links = [
            Link(s, t, 1.0 / point[count + 2 * i], point[count + 2 * i + 1])
            for i, (s, t) in enumerate(self._links)
        ]
        return replace(base, infra=base.infra.with_links(links), profiles=profiles)


def _containers(form: Formulation) -> list[Container]:
    """Every expression whose numbers a speed can move: the rows, and the quantities the
    planner reads off the formulation itself, in a fixed order."""
    rows = [row.expr for row in form.prob.constraints.values()]
    quantities = [form.latency, form.energy, form.device_energy, form.noise]
    return rows + quantities + [form.memory[k] for k in sorted(form.memory)]


def _coefficients(containers: list[Container]) -> dict[Key, float]:
    found: dict[Key, float] = {}
    for index, expression in enumerate(containers):
        found[index, None] = float(expression.constant)
        for variable, value in expression.items():
            found[index, variable.name] = float(value)
    return found


def _step(value: float) -> float:
    """A move large enough that its effect is far above rounding, in the parameter's scale."""
    return value if value > 0 else 1e-3


def _factor(base: ComputeProfile, profile: ComputeProfile) -> float | None:
    """The ``s`` with ``profile`` = ``base`` × ``s`` in every time (``None`` if there is none)."""
    if replace(profile, blocks=base.blocks) != base or profile.blocks.keys() != base.blocks.keys():
        return None
    first = next(iter(base.blocks))
    if base.blocks[first].fp32_s <= 0:
        return None
    factor = profile.blocks[first].fp32_s / base.blocks[first].fp32_s
    expected = base.blocks_scaled(factor)
    same = all(
        math.isclose(a.fp32_s, b.fp32_s, rel_tol=1e-12)
        and (a.int8_s is None) == (b.int8_s is None)
        and (a.int8_s is None or math.isclose(a.int8_s, b.int8_s, rel_tol=1e-12))  # type: ignore[arg-type]
        for a, b in ((expected[name], timing) for name, timing in profile.blocks.items())
    )
    return factor if same else None
