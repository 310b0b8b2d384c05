"""Single-split plans: a prefix of the topological order on the device, the rest on one node.

This is the plan family of Neurosurgeon (one split point between device and one server) and of
QPART (the same, with the device's segment quantized per block under an accuracy bound). A scan
moves the split point one block at a time and re-prices only the moved block and the tensors it
reads or writes, so all ``n + 1`` split points of one node cost ``O(n + tensors)`` prices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qsplit.model import LayerGraph, Tensor
from qsplit.plan._linear import ZERO, LinearPrices, Price
from qsplit.plan._problem import PlanningProblem, Precision


@dataclass(frozen=True)
class SplitCandidate:
    """Blocks before ``position`` (topological order) on the device, the others on ``node``."""

    node: str
    position: int
    quantized: frozenset[str]
    """Device-segment blocks run at int8 (empty for a plain split)."""
    price: Price


def split_assignment(graph: LayerGraph, device: str, node: str, position: int) -> dict[str, str]:
    """The assignment of a split at ``position`` with the suffix on ``node``."""
    return {b: device if i < position else node for i, b in enumerate(graph.block_names)}


def scan_splits(prices: LinearPrices, node: str, *, quantize: bool = False) -> list[SplitCandidate]:
    """Every split point between the device and ``node``, priced.

    With ``quantize``, each split also gets the QPART-style choice of quantized device blocks
    from :func:`_greedy_choice`; without, nothing is quantized.
    """
    problem = prices.problem
    graph, device = problem.graph, prices.device
    order = graph.block_names
    reads, writes = _tensors_by_block(graph)
    assignment = dict.fromkeys(order, node)

    def price_tensor(tensor: Tensor, precision: Precision = "fp32") -> Price:
        source = assignment[tensor.producer] if tensor.producer else device
        targets = {assignment[c] for c in tensor.consumers}
        if tensor.is_model_output:
            targets.add(device)
        price = prices.tensor(tensor, source, targets, precision)
        if (
            source == device
            and device in targets
            and (tensor.producer is None or tensor.is_model_output)
        ):
            price += prices.local_message(tensor, precision)
        return price

    block_price = {b: prices.block(b, node) for b in order}
    tensor_price = {t.name: price_tensor(t) for t in graph.tensors}
    total = sum((*block_price.values(), *tensor_price.values()), ZERO)
    quantizable = set(problem.quantizable) if quantize else set()
    noise_ok = _noise_check(problem)
    # Quantizable device blocks → what quantizing each alone changes (independent under sum).
    saving: dict[str, Price] = {}

    def quantization_saving(block: str) -> Price:
        delta = prices.block(block, device, "int8") - prices.block(block, device)
        for tensor in writes[block]:
            delta += price_tensor(tensor, "int8") - price_tensor(tensor)
        return delta

    result = []
    chosen: frozenset[str] = frozenset()
    chosen_saving = ZERO
    for position in range(len(order) + 1):
        result.append(SplitCandidate(node, position, chosen, total + chosen_saving))
        if position == len(order):
            break
        block = order[position]
        assignment[block] = device
        fresh = prices.block(block, device)
        total += fresh - block_price[block]
        block_price[block] = fresh
        for tensor in (*reads[block], *writes[block]):
            fresh = price_tensor(tensor)
            total += fresh - tensor_price[tensor.name]
            tensor_price[tensor.name] = fresh
        # Only the moved block and the producers of what it reads can change their saving.
        touched = {block} | {t.producer for t in reads[block] if t.producer is not None}
        touched &= quantizable
        if touched:
            saving.update({b: quantization_saving(b) for b in touched})
            chosen, chosen_saving = _greedy_choice(saving, noise_ok)
    return result


def _greedy_choice(
    saving: dict[str, Price], noise_ok: Callable[[frozenset[str]], bool]
) -> tuple[frozenset[str], Price]:
    """Quantize device blocks in order of objective saving while the noise bound holds.

    Under the sum model each block's saving (its int8 compute, and its outputs sent at int8) is
    independent of the others', so only the noise bound couples the choices; taking the largest
    saving first is QPART's greedy reading of its per-layer bit-width rule.
    """
    chosen: frozenset[str] = frozenset()
    total = ZERO
    for block, delta in sorted(saving.items(), key=lambda item: item[1].objective):
        if delta.objective >= 0:
            break
        trial = chosen | {block}
        if noise_ok(trial):
            chosen, total = trial, total + delta
    return chosen, total


def _noise_check(problem: PlanningProblem) -> Callable[[frozenset[str]], bool]:
    """Whether a quantized set meets the noise bound (memoised: scans repeat the same sets)."""
    bound = problem.bounds.noise_max
    noise = problem.noise
    seen: dict[frozenset[str], bool] = {}

    def ok(quantized: frozenset[str]) -> bool:
        if bound is None or noise is None:
            return True
        if quantized not in seen:
            seen[quantized] = noise.predict(quantized) <= bound
        return seen[quantized]

    return ok


def _tensors_by_block(graph: LayerGraph) -> tuple[dict[str, list[Tensor]], dict[str, list[Tensor]]]:
    reads: dict[str, list[Tensor]] = {b: [] for b in graph.block_names}
    writes: dict[str, list[Tensor]] = {b: [] for b in graph.block_names}
    for tensor in graph.tensors:
        if tensor.producer is not None:
            writes[tensor.producer].append(tensor)
        for consumer in dict.fromkeys(tensor.consumers):
            reads[consumer].append(tensor)
    return reads, writes
