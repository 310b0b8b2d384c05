"""The least energy (or sum latency and energy) on two nodes, exactly, by a walk over the blocks.

With a device-energy budget between offloading everything and device-only, the MILP's LP
relaxation meets the budget row with a convex combination of two plans, each paying only its
own crossings, and HiGHS spent 5–30 s proving the least-energy bound on draws of the hard budget
case (docs/planner.md, *Hundreds of tiny blocks*). Where a plan crosses between the two nodes is
a knapsack the relaxation cannot see, but a walk over the blocks in topological order can: its
state is the node of every tensor still to be read and whether it was already sent, so for a
graph whose cut width is small (5–10 on the synthetic detector graphs) there are few states, and
each keeps the Pareto set of (device energy, cost) of its partial plans, so the budget is exact
rather than relaxed. The cost is energy, or any non-negative mix of energy and the ``sum``
latency (both are sums over blocks and transfers).

The noise bound is not a sum over blocks, so the walk cannot carry it. With int8 never slower
than fp32 (checked; otherwise no bound is given), the least cost ``C(F)`` with the quantizable
blocks ``F`` left at fp32 satisfies ``C(F) ≥ C(∅) + Σ_{i∈F} s_i`` (``s_i``: the least cost
int8 saves on ``i`` on either node) and ``C(F) ≤ C(F')`` for ``F ⊆ F'``. So only the
noise-feasible masks with a minimal ``F`` matter; they are walked in the order of that lower
bound until it passes the best cost found.

The memory bounds are left out, so the result is a lower bound on the MILP's least cost (a
relaxation), exact when its plan also fits in memory; the plan is only ever a candidate that
the MILP's rows check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsplit.model import Tensor
from qsplit.plan._cost import sent_bytes
from qsplit.plan._problem import FP32_LINK, PlanningProblem, Precision

MAX_QUANTIZABLE = 16
"""More quantizable blocks than this: the masks are not enumerated (2^16 noise evaluations)."""
MAX_LABELS = 200_000
"""Partial plans kept at one step beyond which the walk gives up (a graph too wide for it)."""
MAX_WALKS = 64
"""Masks walked at most; the bound then stops at the next mask's lower bound."""
THIN = 8
"""Partial plans a thinned walk keeps per state (a heuristic, for a first plan only)."""


@dataclass(frozen=True)
class CostBound:
    """No plan meeting the noise bound and the device-energy budget costs less than ``bound``."""

    bound: float
    assignment: dict[str, str] | None
    """A plan of cost ``bound`` (memory unchecked), when one below the cutoff was found."""
    quantized: tuple[str, ...] = ()


class _TooWide(Exception):
    """The walk's state outgrew :data:`MAX_LABELS`."""


def least_cost(
    problem: PlanningProblem,
    cutoff: float,
    *,
    latency_weight: float = 0.0,
    energy_weight: float = 1.0,
) -> CostBound | None:
    """A lower bound on ``latency_weight·T + energy_weight·E`` (``T`` the ``sum`` latency,
    ``E`` the energy; weights ≥ 0) of every plan of ``problem`` that meets its noise bound and
    device-energy budget: the least such cost when that is below ``cutoff`` (with its plan),
    else at least ``cutoff``. ``None`` when the problem is not one the walk handles: other than
    two nodes, lossy link modes, int8 slower than fp32 somewhere, too many quantizable blocks,
    too wide a graph, or (with a latency weight) the critical-path model or per-message costs.
    """
    if not _applicable(problem) or (latency_weight > 0 and not _sum_latency(problem)):
        return None
    walk = _Walk(problem, latency_weight, energy_weight)
    quantizable = problem.quantizable
    savings = [walk.int8_saving(b) for b in quantizable]
    budget = problem.bounds.device_energy_budget_j
    limit = np.inf if budget is None else budget + 1e-6 * max(1.0, abs(budget))
    masks = _minimal_fp32_masks(problem)
    extra = [sum(s for s, fp32 in zip(savings, mask, strict=True) if fp32) for mask in masks]
    best, plan = cutoff - walk.constant, None
    try:
        # A plan from a thinned walk on the mask that looks cheapest: a cutoff close to the
        # optimum prunes the exact walks far more than the best plan the caller knew.
        likely = masks[int(np.argmin(extra))]
        int8 = frozenset(b for b, fp32 in zip(quantizable, likely, strict=True) if not fp32)
        value, found = walk.run(int8, limit, best, thin=THIN)
        if value < best:
            best, plan = value, (walk.assignment(found), int8)
        least, where = walk.run(frozenset(quantizable), limit, best)
        order = sorted(zip((least + e for e in extra), masks, strict=True))
        for walks, (lower, mask) in enumerate(order):
            if lower >= best:
                break
            if walks == MAX_WALKS:
                return CostBound(lower + walk.constant, None)
            int8 = frozenset(b for b, fp32 in zip(quantizable, mask, strict=True) if not fp32)
            value, found = (least, where) if not any(mask) else walk.run(int8, limit, best)
            if value < best:
                best, plan = value, (walk.assignment(found), int8)
    except _TooWide:
        return None
    if plan is None:
        return CostBound(best + walk.constant, None)
    chosen = tuple(b for b in quantizable if b in plan[1])
    return CostBound(best + walk.constant, plan[0], chosen)


def _sum_latency(problem: PlanningProblem) -> bool:
    """Whether latency is a sum over blocks and transfers: the ``sum`` model without per-message
    costs (a once-per-request ``request_s`` is only a constant)."""
    overhead = problem.overhead
    return (
        problem.latency_model == "sum"
        and overhead.message_s == 0
        and overhead.local_bandwidth_bytes_per_s == float("inf")
    )


def _applicable(problem: PlanningProblem) -> bool:
    infra = problem.infra
    if len(infra.nodes) != 2 or len(problem.quantizable) > MAX_QUANTIZABLE:
        return False
    a, b = infra.node_names
    if not (infra.has_route(a, b) and infra.has_route(b, a)):
        return False
    if any(problem.link_modes(t.name) != (FP32_LINK,) for t in problem.graph.tensors):
        return False
    outputs = {b.name: b.outputs for b in problem.graph.blocks}
    tensor = problem.graph.tensor_by_name
    return all(
        problem.compute_s(block, node, "int8") <= problem.compute_s(block, node, "fp32")
        and all(
            sent_bytes(problem, tensor[t], "int8") <= sent_bytes(problem, tensor[t], "fp32")
            for t in outputs[block]
        )
        for block in problem.quantizable
        for node in infra.node_names
    )


def _minimal_fp32_masks(problem: PlanningProblem) -> list[tuple[bool, ...]]:
    """Noise-feasible choices (``True``: that quantizable block at fp32) of which no feasible
    choice keeps a strict subset at fp32: every other feasible choice costs at least as much."""
    quantizable = problem.quantizable
    count = len(quantizable)
    int8 = (np.arange(1 << count)[:, None] >> np.arange(count)) & 1 == 1
    noise, noise_max = problem.noise, problem.bounds.noise_max
    if noise is None or noise_max is None or count == 0:
        return [(False,) * count]
    column = {b: i for i, b in enumerate(quantizable)}
    value = noise.intercept * int8.any(axis=1)
    for term in noise.terms:
        if all(b in column for b in term.blocks):  # others name what cannot be lossy: 0
            value = value + term.coefficient * int8[:, [column[b] for b in term.blocks]].all(1)
    allowed = noise.polynomial_bound(noise_max)
    feasible = value <= allowed + 1e-6 * max(1.0, abs(allowed))
    masks = np.flatnonzero(feasible)
    more = [
        feasible[masks | (1 << i)] & (masks & (1 << i) == 0) for i in range(count)
    ]  # quantizing one more block is still feasible: not minimal
    minimal = masks[~np.any(more, axis=0)]
    return [tuple(not bool(m >> i & 1) for i in range(count)) for m in minimal.tolist()]


class _Walk:
    """The blocks in topological order, priced on the device (0) and the other node (1)."""

    def __init__(
        self, problem: PlanningProblem, latency_weight: float, energy_weight: float
    ) -> None:
        self.problem = problem
        self.weights = (latency_weight, energy_weight)
        self.constant = latency_weight * problem.overhead.request_s
        """The cost every plan pays (the request's fixed time)."""
        infra, graph = problem.infra, problem.graph
        device = infra.device
        self.nodes = (device, next(n for n in infra.node_names if n != device))
        self.blocks = graph.block_names
        position = {b: i for i, b in enumerate(self.blocks)}
        self.tensors: list[Tensor] = list(graph.tensors)
        self.reads: list[list[int]] = [[] for _ in self.blocks]
        self.outputs: list[list[int]] = [[] for _ in self.blocks]
        self.last: dict[int, int] = {}
        for index, tensor in enumerate(self.tensors):
            for consumer in dict.fromkeys(tensor.consumers):
                self.reads[position[consumer]].append(index)
            if tensor.producer is not None:
                self.outputs[position[tensor.producer]].append(index)
            if tensor.consumers:
                self.last[index] = max(position[c] for c in tensor.consumers)
        quantizable = set(problem.quantizable)
        levels: tuple[Precision, ...] = ("fp32", "int8")
        self._compute = {
            (b, level): self.compute(b, level)
            for b in self.blocks
            for level in levels
            if level == "fp32" or b in quantizable
        }
        self._send = {
            (t, level): (self._send_j(tensor, level, 0), self._send_j(tensor, level, 1))
            for t, tensor in enumerate(self.tensors)
            for level in levels
            if level == "fp32" or tensor.producer in quantizable
        }
        self._memo: dict[tuple[tuple, int, int], tuple[tuple, tuple[tuple[int, int], ...]]] = {}

    def compute(self, block: str, precision: Precision) -> np.ndarray:
        """Cost and device energy of ``block`` at ``precision`` on each node (rows)."""
        infra, (per_s, per_j) = self.problem.infra, self.weights
        rows = []
        for node in self.nodes:
            seconds = self.problem.compute_s(block, node, precision)
            joules = infra.node(node).compute_power_w * seconds
            rows.append((per_s * seconds + per_j * joules, joules if node == infra.device else 0.0))
        return np.array(rows)

    def int8_saving(self, block: str) -> float:
        """The least cost int8 saves on ``block`` on either node."""
        return float(np.min(self.compute(block, "fp32")[:, 0] - self.compute(block, "int8")[:, 0]))

    def _send_j(self, tensor: Tensor, precision: Precision, source: int) -> tuple[float, float]:
        """Cost, and the device's energy, of sending ``tensor`` to the other node."""
        infra, (per_s, per_j) = self.problem.infra, self.weights
        size = sent_bytes(self.problem, tensor, precision)
        route = infra.route(self.nodes[source], self.nodes[1 - source])
        cost = device = 0.0
        for link, seconds in route.hop_s(size):
            joules = infra.node(link.source).transmit_power_w * seconds
            cost += per_s * seconds + per_j * joules
            device += joules if link.source == infra.device else 0.0
        return cost, device

    def assignment(self, where: int) -> dict[str, str]:
        """Block → node from a walk's bit set (bit ``j``: block ``j`` on the other node)."""
        return {b: self.nodes[where >> j & 1] for j, b in enumerate(self.blocks)}

    def run(
        self, int8: frozenset[str], budget: float, cutoff: float, thin: int | None = None
    ) -> tuple[float, int]:
        """The least cost below ``cutoff`` of a placement with ``int8`` quantized whose device
        energy is at most ``budget``, and its bit set; ``(inf, 0)`` when there is none.

        ``thin`` keeps only that many partial plans per state, spread over device energy: then
        the result is some plan's cost, not the least.

        The partial plans of one step are flat arrays (device cost, cost, bit set, state),
        so each step costs a few array operations however many states there are.
        """
        level: dict[str, Precision] = {b: "int8" if b in int8 else "fp32" for b in self.blocks}
        compute = np.array([self._compute[b, level[b]] for b in self.blocks])  # block, node, part
        send = [
            self._send[t, level[tensor.producer] if tensor.producer else "fp32"]
            for t, tensor in enumerate(self.tensors)
        ]
        ahead = _Ahead(compute[:, :, 0], compute[:, 0, 1])
        inputs = (t for t, tensor in enumerate(self.tensors) if tensor.producer is None)
        keys = [tuple(sorted((t, 0) for t in inputs if self.tensors[t].consumers))]
        device, cost = np.zeros(1), np.zeros(1)
        where, state = np.zeros(1, dtype=object), np.zeros(1, dtype=np.int64)
        for j in range(len(self.blocks)):
            index: dict[tuple, int] = {}
            moves, added, device_added = [], [], []
            for key in keys:
                for node in (0, 1):
                    after, sent = self._step(key, j, node)
                    moves.append(index.setdefault(after, len(index)))
                    own, own_device = compute[j, node]
                    added.append(sum(send[t][source][0] for t, source in sent) + own)
                    device_added.append(sum(send[t][source][1] for t, source in sent) + own_device)
            parts = []
            for node in (0, 1):
                move = 2 * state + node
                new_cost = cost + np.array(added)[move]
                new_device = device + np.array(device_added)[move]
                keep = new_cost + ahead.least(j, budget - new_device) < cutoff
                bits = where[keep] | (1 << j) if node else where[keep]
                parts.append((new_device[keep], new_cost[keep], bits, np.array(moves)[move[keep]]))
            device, cost, where, state = _pareto(parts)
            if thin is not None:
                device, cost, where, state = _thinned(thin, device, cost, where, state)
            if not len(cost):
                return np.inf, 0
            if len(cost) > MAX_LABELS:
                raise _TooWide
            reached = np.zeros(len(index), dtype=bool)
            reached[state] = True  # keep only the states some plan reaches
            state = (np.cumsum(reached) - 1)[state]
            keys = [key for key, hit in zip(index, reached.tolist(), strict=True) if hit]
        best = int(np.argmin(cost))
        return float(cost[best]), int(where[best])

    def _step(self, state: tuple, j: int, node: int) -> tuple[tuple, tuple[tuple[int, int], ...]]:
        """Block ``j`` on ``node`` from ``state``: the next state and the transfers it adds
        (tensor, source node). A tensor is sent when its first reader off its source is placed
        (once: the state remembers), a model output when produced off the device. The same for
        every quantization choice, so it is kept for the next walk."""
        memo = self._memo.get((state, j, node))
        if memo is not None:
            return memo
        open_ = dict(state)
        sent_now = []
        for t in self.reads[j]:
            code = open_[t]
            source, sent = code >> 1, code & 1
            if source != node and not sent:
                sent_now.append((t, source))
                open_[t] = code | 1
            if self.last[t] == j:
                del open_[t]
        for t in self.outputs[j]:
            tensor, sent = self.tensors[t], 0
            if tensor.is_model_output and node == 1:
                sent_now.append((t, 1))
                sent = 1
            if tensor.consumers:
                open_[t] = node << 1 | sent
        memo = tuple(sorted(open_.items())), tuple(sent_now)
        self._memo[(state, j, node)] = memo
        return memo


class _Ahead:
    """Lower bounds on the cost the blocks after each step add, given the device energy they
    may still use: each block on its cheaper node, then the device's blocks moved off in the
    order of cost added per joule of device energy freed while over that allowance (the
    fractional knapsack; transfers, which only add, left out). One row per step.
    """

    def __init__(self, cost: np.ndarray, device: np.ndarray) -> None:
        count = len(cost)
        cheaper = cost.min(axis=1)
        self.base = np.concatenate([np.cumsum(cheaper[::-1])[::-1], [0.0]])[1:]
        on_device = cost[:, 0] <= cost[:, 1]
        freed = np.where(on_device, device, 0.0)
        dearer = np.where(on_device, cost[:, 1] - cost[:, 0], 0.0)
        order = np.argsort(dearer / np.maximum(freed, 1e-300), kind="stable")
        after = order[None, :] > np.arange(count)[:, None]  # row j: the blocks after step j
        zero = np.zeros((count, 1))
        self.freed = np.hstack([zero, np.cumsum(np.where(after, freed[order], 0.0), axis=1)])
        self.dearer = np.hstack([zero, np.cumsum(np.where(after, dearer[order], 0.0), axis=1)])

    def least(self, j: int, allowance: np.ndarray) -> np.ndarray:
        """The bound after step ``j`` for each allowance; ``inf`` for a negative one."""
        freed = self.freed[j]
        over = np.maximum(freed[-1] - allowance, 0.0)
        bound = self.base[j] + np.interp(over, freed, self.dearer[j])
        return np.where(allowance < 0.0, np.inf, bound)


def _thinned(
    count: int, device: np.ndarray, cost: np.ndarray, where: np.ndarray, state: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """About ``count`` plans per state, evenly spaced in :func:`_pareto`'s order, the last
    (least cost) always among them."""
    size = np.bincount(state)
    first = np.concatenate([[0], np.cumsum(size)[:-1]])
    position = np.arange(len(state)) - first[state]
    stride = -(-size // count)
    keep = (position % stride[state] == 0) | (position == size[state] - 1)
    return device[keep], cost[keep], where[keep], state[keep]


def _pareto(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per state, the partial plans no other one beats in both device energy and cost.

    Sorted by state, then device energy, a plan is kept when its cost is below every earlier
    one of its state. Costs are compared by their rank, offset per state, so the running
    minimum restarts at each state without any rounding (equal costs may both be kept).
    """
    device, cost, where, state = (np.concatenate(column) for column in zip(*parts, strict=True))
    rank = np.empty(len(cost), dtype=np.int64)
    rank[np.argsort(cost, kind="stable")] = np.arange(len(cost))
    order = np.lexsort((rank, device, state))
    device, cost, where, state, rank = (a[order] for a in (device, cost, where, state, rank))
    shifted = rank - state * (len(rank) + 1)
    keep = np.ones(len(rank), dtype=bool)
    keep[1:] = shifted[1:] < np.minimum.accumulate(shifted)[:-1]
    return device[keep], cost[keep], where[keep], state[keep]
