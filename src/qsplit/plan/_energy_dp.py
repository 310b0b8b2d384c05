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

The noise bound is not a sum over blocks, so the labels carry the precisions chosen so far (a
mask over the quantizable blocks, decided in graph order). Two masks whose every completion is
noise-feasible alike are interchangeable for the rest of the walk, except through the
precision of their tensors still to be sent, so labels are compared within a state, that
class and those precisions: on the hard case up to ~90 classes where there are 2^k masks, and
one walk replaces the earlier walk per mask (25 on one draw). With int8 never slower than fp32
(checked; otherwise no bound is given), the blocks left at fp32 cost at least their least
int8 saving ``s_i`` more than in int8, which, with the cheapest remaining feasible completion
of the mask, prunes partial plans.

The memory bounds are left out, so the result is a lower bound on the MILP's least cost (a
relaxation), exact when its plan also fits in memory; the plan is only ever a candidate that
the MILP's rows check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from qsplit.model import Tensor
from qsplit.plan._cost import sent_bytes
from qsplit.plan._problem import FP32_LINK, PlanningProblem, Precision

MAX_QUANTIZABLE = 16
"""More quantizable blocks than this: the masks are not enumerated (2^16 noise evaluations)."""
MAX_LABELS = 200_000
"""Partial plans kept at one step beyond which the walk gives up (a graph too wide for it)."""
THIN = 8
"""Partial plans a thinned walk keeps per state and mask (a heuristic, for a first plan only)."""
BEAM = 64
"""Labels a thinned walk keeps in all, the most promising by cost plus the bound on the rest:
from the single-node plans' cutoff, the least-latency walk took 4 s on one draw without it."""


@dataclass(frozen=True)
class CostBound:
    """No plan meeting the noise bound, the device-energy budget (and the hold, if any) costs
    less than ``bound``."""

    bound: float
    assignment: dict[str, str] | None
    """A plan of cost ``bound`` (memory unchecked), when one below the cutoff was found."""
    quantized: tuple[str, ...] = ()


Steps = dict[tuple[tuple, int, int], tuple[tuple, tuple[tuple[int, int], ...]]]
"""From a state, block ``j`` on a node: the next state and the transfers it adds."""
Hold = tuple[float, float, float]
"""A lexicographic hold: ``latency_weight·T + energy_weight·E ≤ limit`` as
``(latency_weight, energy_weight, limit)``."""


class _GaveUp(Exception):
    """The walk's state outgrew :data:`MAX_LABELS`, or its time ran out."""


def least_cost(
    problem: PlanningProblem,
    cutoff: float,
    *,
    latency_weight: float = 0.0,
    energy_weight: float = 1.0,
    hold: Hold | None = None,
    steps: Steps | None = None,
    thin_first: bool = True,
    time_limit_s: float | None = None,
) -> CostBound | None:
    """A lower bound on ``latency_weight·T + energy_weight·E`` (``T`` the ``sum`` latency,
    ``E`` the energy; weights ≥ 0) of every plan of ``problem`` that meets its noise bound,
    device-energy budget and ``hold``: the least such cost when that is below ``cutoff`` (with
    its plan), else at least ``cutoff``. ``None`` when the problem is not one the walk handles:
    other than two nodes, lossy link modes, int8 slower than fp32 somewhere, too many
    quantizable blocks, too wide a graph, or (with latency in the cost or the hold) the
    critical-path model or per-message costs. ``steps`` keeps the walk's moves between calls
    on the same problem (they depend on the graph only; on the hard case a walk spent a
    second of its two finding them). ``thin_first`` asks for a thinned walk before the
    exact one, which pays where ``cutoff`` is far above the optimum (from 3 % above it, 0.4 s
    for the thinned walk and 0.3 s for the exact one from its plan, against 2.1 s) and only
    costs where it is close. Past ``time_limit_s`` the walk gives up (``None``), so the
    caller's time limit holds and its solver runs instead.
    """
    held = (0.0, 0.0, np.inf) if hold is None else hold
    if not _applicable(problem) or (
        (latency_weight > 0 or held[0] > 0) and not _sum_latency(problem)
    ):
        return None
    deadline = math.inf if time_limit_s is None else time.monotonic() + time_limit_s
    walk = _Walk(
        problem, (latency_weight, energy_weight), held[:2], {} if steps is None else steps, deadline
    )
    budget = problem.bounds.device_energy_budget_j
    allowed = np.inf if budget is None else budget + 1e-6 * max(1.0, abs(budget))
    best, plan = cutoff - walk.constant, None
    try:
        # A plan from a thinned walk first: a cutoff close to the optimum prunes the exact
        # walk far more than the best plan the caller knew.
        for thin in (THIN, None) if thin_first else (None,):
            value, found = walk.run(allowed, best, thin=thin, limit=held[2])
            if value < best:
                best, plan = value, found
    except _GaveUp:
        return None
    if plan is None:
        return CostBound(best + walk.constant, None)
    assignment, int8 = plan
    return CostBound(best + walk.constant, assignment, int8)


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


def _noise_feasible(problem: PlanningProblem) -> np.ndarray:
    """For each mask (bit ``i``: the ``i``-th quantizable block in int8), whether it meets the
    noise bound."""
    quantizable = problem.quantizable
    count = len(quantizable)
    int8 = (np.arange(1 << count)[:, None] >> np.arange(count)) & 1 == 1
    noise, noise_max = problem.noise, problem.bounds.noise_max
    if noise is None or noise_max is None or count == 0:
        return np.ones(1 << count, dtype=bool)
    column = {b: i for i, b in enumerate(quantizable)}
    value = noise.intercept * int8.any(axis=1)
    for term in noise.terms:
        if all(b in column for b in term.blocks):  # others name what cannot be lossy: 0
            value = value + term.coefficient * int8[:, [column[b] for b in term.blocks]].all(1)
    allowed = noise.polynomial_bound(noise_max)
    return value <= allowed + 1e-6 * max(1.0, abs(allowed))


def _mask_classes(feasible: np.ndarray, bits: int) -> list[np.ndarray]:
    """Row ``k``: for each choice of the first ``k`` quantizable blocks, a number shared by
    exactly the choices that the same choices of the other blocks complete to noise-feasible
    masks. For the noise bound such choices are interchangeable, so the walk compares their
    partial plans with each other (up to ~90 classes on the hard case, against 2^k choices).
    """
    rows = []
    for k in range(bits + 1):
        completions = feasible.reshape(1 << (bits - k), 1 << k)  # column: a choice of k bits
        packed = np.packbits(completions, axis=0).T  # one row of bytes per choice
        number: dict[bytes, int] = {}
        rows.append(np.array([number.setdefault(row.tobytes(), len(number)) for row in packed]))
    return rows


def _mask_extra(feasible: np.ndarray, savings: list[float]) -> list[np.ndarray]:
    """Row ``k``: for each choice of the first ``k`` quantizable blocks (a mask of ``k`` bits),
    the least ``Σ s_i`` over the blocks ``i ≥ k`` left at fp32 by a noise-feasible completion
    (``inf`` when none is): what the rest must still pay for the noise bound at least.
    """
    rows = [np.where(feasible, 0.0, np.inf)]
    for k in reversed(range(len(savings))):
        after, half = rows[0], 1 << k
        rows.insert(0, np.minimum(after[:half] + savings[k], after[half : 2 * half]))
    return rows


class _Walk:
    """The blocks in topological order, priced on the device (0) and the other node (1)."""

    def __init__(
        self,
        problem: PlanningProblem,
        weights: tuple[float, float],
        held: tuple[float, float],
        steps: Steps,
        deadline: float,
    ) -> None:
        self.problem = problem
        self.weights = (weights, held)
        """Per second of ``sum`` latency and per joule: of the cost, and of the held cost."""
        self.constant = weights[0] * problem.overhead.request_s
        """The cost every plan pays (the request's fixed time); the same for the held cost."""
        self.held_constant = held[0] * problem.overhead.request_s
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
        self.quantizable = problem.quantizable
        self.bit = {b: i for i, b in enumerate(self.quantizable)}
        """Mask bit of each quantizable block; graph order, so the walk decides them in turn."""
        self.decided = np.cumsum([b in self.bit for b in self.blocks])
        """Mask bits decided after each step."""
        levels: tuple[Precision, ...] = ("fp32", "int8")
        # compute[j, node, level, part]: cost, device energy and held cost (int8 = fp32 where
        # not quantizable)
        self.compute = np.array(
            [
                [self._compute(b, node, level if b in self.bit else "fp32") for level in levels]
                for b in self.blocks
                for node in self.nodes
            ]
        ).reshape(len(self.blocks), 2, 2, 3)
        # send[t, level, source, part]
        self.send = np.array(
            [
                [
                    self._send(tensor, level if tensor.producer in self.bit else "fp32", source)
                    for source in (0, 1)
                ]
                for tensor in self.tensors
                for level in levels
            ]
        ).reshape(len(self.tensors), 2, 2, 3)
        self.producer_bit = np.array(
            [self.bit.get(t.producer, 0) if t.producer else 0 for t in self.tensors], dtype=np.int64
        )
        feasible = _noise_feasible(problem)
        self.classes = _mask_classes(feasible, len(self.quantizable))
        self.open_bits = self._open_bits(position)
        self.extra, self.ahead = [], []
        for part in (0, 2):  # the cost, and the held cost
            savings = [
                float(np.min(np.diff(self.compute[position[b], :, ::-1, part], axis=1)))
                for b in self.quantizable
            ]
            self.extra.append(_mask_extra(feasible, savings))
            self.ahead.append(_Ahead(self.compute[:, :, 1, part], self.compute[:, 0, 1, 1]))
        self._memo = steps
        self.deadline = deadline

    def _open_bits(self, position: dict[str, int]) -> np.ndarray:
        """After each step, the mask bits of quantizable blocks with an output still to be
        read: their precision still prices a transfer."""
        bits = np.zeros(len(self.blocks) + 1, dtype=np.int64)
        for t, tensor in enumerate(self.tensors):
            if tensor.producer in self.bit and t in self.last:
                produced = position[tensor.producer]
                bits[produced : self.last[t]] |= 1 << self.bit[tensor.producer]
        return bits[:-1]

    def _priced(self, seconds: float, joules: float, device: float) -> tuple[float, ...]:
        (per_s, per_j), (held_s, held_j) = self.weights
        return per_s * seconds + per_j * joules, device, held_s * seconds + held_j * joules

    def _compute(self, block: str, node: str, precision: Precision) -> tuple[float, ...]:
        """Cost, device energy and held cost of ``block`` at ``precision`` on ``node``."""
        infra = self.problem.infra
        seconds = self.problem.compute_s(block, node, precision)
        joules = infra.node(node).compute_power_w * seconds
        return self._priced(seconds, joules, joules if node == infra.device else 0.0)

    def _send(self, tensor: Tensor, precision: Precision, source: int) -> tuple[float, ...]:
        """Cost, the device's energy and held cost of sending ``tensor`` to the other node."""
        infra = self.problem.infra
        size = sent_bytes(self.problem, tensor, precision)
        route = infra.route(self.nodes[source], self.nodes[1 - source])
        seconds = joules = device = 0.0
        for link, hop_s in route.hop_s(size):
            hop_j = infra.node(link.source).transmit_power_w * hop_s
            seconds, joules = seconds + hop_s, joules + hop_j
            device += hop_j if link.source == infra.device else 0.0
        return self._priced(seconds, joules, device)

    def run(
        self, budget: float, cutoff: float, thin: int | None = None, limit: float = np.inf
    ) -> tuple[float, tuple[dict[str, str], tuple[str, ...]] | None]:
        """The least cost below ``cutoff`` of a plan meeting the noise bound whose device
        energy is at most ``budget`` and held cost at most ``limit``, with the plan (block →
        node, blocks in int8); ``(inf, None)`` when there is none.

        A partial plan is labelled by the node and sent flag of every tensor still to be read
        (its state) and the precisions chosen so far (its mask); of the labels sharing both,
        only those no other beats in device energy and cost (and held cost, under a limit)
        are kept. ``thin`` keeps only that many per state and mask, spread over device energy,
        and the :data:`BEAM` most promising in all: then the result is some plan's cost, not
        the least. Each step is a few array operations over all labels.
        """
        inputs = (t for t, tensor in enumerate(self.tensors) if tensor.producer is None)
        keys = [tuple(sorted((t, 0) for t in inputs if self.tensors[t].consumers))]
        device, cost, held = np.zeros(1), np.zeros(1), np.zeros(1)
        state, mask = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
        history: list[tuple[np.ndarray, np.ndarray]] = []
        bits, holding = len(self.quantizable), limit < np.inf
        limit -= self.held_constant
        for j, block in enumerate(self.blocks):
            after, slots, following = self._transitions(keys, j)
            bit = self.bit.get(block)
            extra = [rows[self.decided[j]] for rows in self.extra]
            # every label × every move (node, precision), move by move
            moves = [(n, q) for n in (0, 1) for q in ((0, 1) if bit is not None else (0,))]
            count = len(cost)
            node = np.repeat(np.array([n for n, _ in moves], dtype=np.int8), count)
            level = np.repeat(np.array([q for _, q in moves]), count)
            label = np.tile(np.arange(count), len(moves))
            chosen = mask[label] if bit is None else mask[label] | level << bit
            move = 2 * state[label] + node
            sent = slots[move]  # label, slot: tensor and source (−1: none)
            tensor, source = sent[..., 0], np.maximum(sent[..., 1], 0)
            lossy = (chosen[:, None] >> self.producer_bit[tensor]) & 1
            added = self.compute[j, node, level] + np.sum(
                self.send[tensor, lossy, source], axis=1, where=sent[..., 1:] >= 0
            )
            new_cost, new_device = cost[label] + added[:, 0], device[label] + added[:, 1]
            new_held = held[label] + added[:, 2]
            allowance = budget - new_device
            keep = new_cost + self.ahead[0].least(j, allowance) + extra[0][chosen] < cutoff
            if holding:
                hope = new_held + self.ahead[1].least(j, allowance) + extra[1][chosen]
                keep &= hope <= limit
            index = np.flatnonzero(keep)
            columns = [
                new_device[index],
                new_cost[index],
                new_held[index],
                after[move[index]],
                chosen[index],
                label[index],
                node[index],
            ]
            state, mask = columns[3], columns[4]
            kind = self.classes[self.decided[j]][mask] << bits | (mask & self.open_bits[j])
            group = state << 2 * bits | kind
            columns = _pareto(group, columns, thin, holding)
            if thin is not None and len(columns[0]) > BEAM:
                hope = columns[1] + self.ahead[0].least(j, budget - columns[0])
                best = np.sort(np.argpartition(hope + extra[0][columns[4]], BEAM)[:BEAM])
                columns = tuple(c[best] for c in columns)
            device, cost, held, state, mask, parent, node_of = columns
            if not len(cost):
                return np.inf, None
            if len(cost) > MAX_LABELS or time.monotonic() > self.deadline:
                raise _GaveUp
            history.append((parent, node_of))
            # the labels are sorted by state: number the states some label has in turn
            change = np.concatenate([[True], state[1:] != state[:-1]])
            keys = [following[i] for i in state[change].tolist()]
            state = np.cumsum(change) - 1
        best = int(np.argmin(cost))
        return float(cost[best]), self._plan(history, best, int(mask[best]))

    def _plan(
        self, history: list[tuple[np.ndarray, np.ndarray]], label: int, mask: int
    ) -> tuple[dict[str, str], tuple[str, ...]]:
        """The plan of the final ``label``, traced back through each step's parents."""
        where = []
        for parent, node in reversed(history):
            where.append(self.nodes[int(node[label])])
            label = int(parent[label])
        assignment = dict(zip(self.blocks, reversed(where), strict=True))
        int8 = tuple(b for b in self.quantizable if mask >> self.bit[b] & 1)
        return assignment, int8

    def _transitions(self, keys: list[tuple], j: int) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
        """Block ``j`` on each node from each state (row ``2·state + node``): the next state's
        index, the transfers it adds (tensor, source node; source −1 pads), and the next
        states."""
        index: dict[tuple, int] = {}
        after, sent_lists = [], []
        for key in keys:
            for node in (0, 1):
                following, sent = self._step(key, j, node)
                after.append(index.setdefault(following, len(index)))
                sent_lists.append(sent)
        width = max((len(s) for s in sent_lists), default=0)
        slots = np.full((len(sent_lists), max(width, 1), 2), -1, dtype=np.int64)
        slots[..., 0] = 0
        for row, sent in enumerate(sent_lists):
            if sent:
                slots[row, : len(sent)] = sent
        return np.array(after, dtype=np.int64), slots, list(index)

    def _step(self, state: tuple, j: int, node: int) -> tuple[tuple, tuple[tuple[int, int], ...]]:
        """Block ``j`` on ``node`` from ``state``: the next state and the transfers it adds
        (tensor, source node). A tensor is sent when its first reader off its source is placed
        (once: the state remembers), a model output when produced off the device. The same for
        every walk, so it is kept."""
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
    fractional knapsack; transfers, which only add, left out). One row per step. Priced in
    int8 wherever a block may be quantized, which is never dearer: what fp32 costs more is
    :func:`_mask_extra`'s part.
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


def _pareto(
    group: np.ndarray, columns: list[np.ndarray], thin: int | None, held: bool = False
) -> tuple[np.ndarray, ...]:
    """Per group, the labels no other one beats in device energy and cost (and held cost).

    ``columns`` hold device energy, cost, held cost and whatever else rides along. Sorted by
    group, then device energy, a label is dropped when an earlier one of its group costs
    less. Costs are compared by their rank, offset per group, so the running minimum restarts
    at each group without any rounding (equal costs may both be kept). With ``held``, that
    earlier label must also hold no more, and the earlier one holding least is tried too: a
    label kept that another beats is only a cost, never a loss. ``thin`` then keeps only about
    that many per group, evenly spaced, the last (least cost) always among them.
    """
    device, cost = columns[:2]
    if not len(cost):
        return tuple(columns)
    rank = _ranks(cost)
    order = np.lexsort((rank, device, group))
    group, rank = group[order], rank[order]
    first = np.concatenate([[True], group[1:] != group[:-1]])
    ordinal = np.cumsum(first) - 1
    offset = ordinal * (len(rank) + 1)
    least = np.minimum.accumulate(rank - offset)[:-1]  # before each label: least cost rank
    beaten = np.concatenate([[False], (least < rank[1:] - offset[1:]) & ~first[1:]])
    if held:
        values, costs, later = columns[2][order], columns[1][order], ~first[1:]
        at_rank = np.empty_like(values)
        at_rank[rank] = values
        beaten[1:] &= at_rank[np.where(later, least + offset[1:], 0)] <= values[1:]
        holding = _ranks(values)
        lowest = np.minimum.accumulate(holding - offset)[:-1]
        cost_at = np.empty_like(costs)
        cost_at[holding] = costs
        by_held = (lowest < holding[1:] - offset[1:]) & later
        beaten[1:] |= by_held & (cost_at[np.where(later, lowest + offset[1:], 0)] <= costs[1:])
    order, group = order[~beaten], group[~beaten]
    if thin is not None and len(order):
        first = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
        size = np.diff(np.append(first, len(group)))
        ordinal = np.repeat(np.arange(len(first)), size)
        position = np.arange(len(group)) - first[ordinal]
        stride = -(-size // thin)
        order = order[(position % stride[ordinal] == 0) | (position == size[ordinal] - 1)]
    return tuple(c[order] for c in columns)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Each value's position in ascending order (ties by position)."""
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    return rank
