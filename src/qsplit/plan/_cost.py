"""The cost model: what a placement and a quantization choice cost, in seconds, joules, bytes.

This is the single definition of cost in qsplit. The MILP is built from the same coefficient
functions (:func:`wire_bytes`, :func:`weight_bytes`, :meth:`PlanningProblem.compute_s`,
:meth:`Route.hop_s`), baselines are priced with :func:`evaluate`, and every plan's predicted
values are :func:`evaluate` of its assignment, so a number never means two things.

Definitions (docs/planner.md has the long form):

* A tensor's **source** is its producer's node, or the device for a model input. Its
  **destinations** are its consumers' nodes, plus the device when it is a model output. It is sent
  **once** to each destination ≠ source, however many consumers sit there, along the route
  ``source → destination`` (:meth:`Infra.route`: the direct link, or links through other nodes
  that store and forward it). Each hop takes ``latency_s + wire_bytes / bandwidth`` of its link
  and is charged to that link; the tensor arrives after the sum. Two destinations whose routes
  share a hop are two transfers on it, as the runtime sends them.
* A quantized producer sends its tensor at int8: one byte per element plus
  :data:`QUANT_PARAMS_BYTES` for scale and zero point. Non-float tensors always travel as they are.
* A tensor's **link mode** (:class:`LinkMode`, one per tensor, on every link it crosses) lowers
  an fp32 producer's output to fp16 (2 bytes per element) or int8 (as above), then optionally
  compresses it (bytes × the compression table's ratio). Each transfer to a destination node
  is encoded on the source node and decoded on the destination (relays forward it encoded):
  codec time, ``fixed_s + per_byte_s × input bytes`` of the node's profile, is compute time of
  that node (latency, node load, energy at its compute power). A tensor sent to two nodes is
  encoded once per destination, the runtime's upper bound.
* Energy is ``Σ_k P^c_k·compute_s_k + Σ_(k,h) P^x_k·transfer_s_kh``; the device's energy is its
  own compute and transmit share.
* Memory of a node: weights of its blocks (int8 weights take a quarter of the fp32 bytes) plus
  every tensor present on it — produced there or delivered to it, at full size (received int8
  tensors are dequantized). That sum is an upper bound on the peak of live activations; it needs no
  schedule and is linear in the placement.
* Latency ``sum``: all compute plus all transfers (the papers' sequential model). Latency
  ``critical-path``: the finish time of the DAG when each block starts once all its inputs have
  arrived on its node, transfers start when their producer finishes, and the request ends when
  every block has finished and every model output has reached the device — but never less than
  the busiest node's total compute, since a node runs its blocks one at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from qsplit.errors import AssignmentError
from qsplit.infra import Infra
from qsplit.model import LayerGraph, Tensor
from qsplit.plan._problem import FP32_LINK, LatencyModel, LinkMode, PlanningProblem, Precision
from qsplit.quant import link_variable

QUANT_PARAMS_BYTES = 8
"""Bytes sent with an int8 tensor for its quantization parameters (float32 scale, zero point)."""

_FLOAT_ITEM_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
_WEIGHT_SCALE: dict[Precision, float] = {"fp32": 1.0, "int8": 0.25}


def wire_bytes(tensor: Tensor, precision: Precision) -> int:
    """Bytes a tensor takes on a link when its producer runs at ``precision``."""
    item = _FLOAT_ITEM_BYTES.get(tensor.dtype)
    if precision == "fp32" or item is None:
        return tensor.bytes
    return tensor.bytes // item + QUANT_PARAMS_BYTES


def encoded_precision(precision: Precision, mode: LinkMode) -> str:
    """The precision a tensor crosses at: a quantized producer's int8, else the link's."""
    return "int8" if precision == "int8" else mode.precision


def _encoded_bytes(tensor: Tensor, encoded: str) -> int:
    """Bytes of ``tensor`` at ``encoded`` precision, before any codec."""
    item = _FLOAT_ITEM_BYTES.get(tensor.dtype)
    if item is None or encoded == "fp32":
        return tensor.bytes
    if encoded == "fp16":
        return tensor.bytes // item * 2
    return wire_bytes(tensor, "int8")


def sent_bytes(
    problem: PlanningProblem, tensor: Tensor, precision: Precision, mode: LinkMode = FP32_LINK
) -> float:
    """Bytes on each hop of a transfer of ``tensor`` from a producer at ``precision``."""
    size = _encoded_bytes(tensor, encoded_precision(precision, mode))
    if mode.codec == "none":
        return size
    ratio = _ratio(problem, tensor, encoded_precision(precision, mode), mode.codec)
    return size * ratio


def encode_s(
    problem: PlanningProblem, tensor: Tensor, precision: Precision, mode: LinkMode, node: str
) -> float:
    """Time ``node`` spends turning ``tensor`` into what it sends (0 for :data:`FP32_LINK`)."""
    if mode == FP32_LINK:
        return 0.0
    codec = problem.profiles[node].codec
    assert codec is not None  # PlanningProblem.link_modes offers no mode without its times
    seconds = 0.0
    encoded = encoded_precision(precision, mode)
    if encoded != "fp32" and precision == "fp32":
        seconds += codec.encode[_OPERATION[encoded]].seconds(tensor.bytes)
    if mode.codec != "none":
        seconds += codec.encode[mode.codec].seconds(_encoded_bytes(tensor, encoded))
    return seconds


def decode_s(
    problem: PlanningProblem, tensor: Tensor, precision: Precision, mode: LinkMode, node: str
) -> float:
    """Time ``node`` spends turning what it received back into ``tensor``."""
    if mode == FP32_LINK:
        return 0.0
    codec = problem.profiles[node].codec
    assert codec is not None
    seconds = 0.0
    encoded = encoded_precision(precision, mode)
    if mode.codec != "none":
        seconds += codec.decode[mode.codec].seconds(sent_bytes(problem, tensor, precision, mode))
    if encoded != "fp32" and precision == "fp32":
        seconds += codec.decode[_OPERATION[encoded]].seconds(_encoded_bytes(tensor, encoded))
    return seconds


_OPERATION = {"fp16": "cast16", "int8": "int8"}


def _ratio(problem: PlanningProblem, tensor: Tensor, precision: str, codec: str) -> float:
    ratio = (
        None
        if problem.compression is None
        else problem.compression.ratio(tensor.name, precision, codec)
    )
    if ratio is None:
        raise AssignmentError(
            f"no compression ratio for tensor {tensor.name!r} at {precision} with {codec}",
            field="link_codec",
            fix="measure the compression table for this model, or send the tensor uncompressed",
        )
    return ratio


def weight_bytes(block_weight_bytes: int, precision: Precision) -> float:
    """Memory the weights of a block take at ``precision`` (quantization *saves* memory)."""
    return block_weight_bytes * _WEIGHT_SCALE[precision]


@dataclass(frozen=True)
class Evaluation:
    """What one plan costs under the cost model. Link keys are ``(sender, receiver)``."""

    latency_s: float
    """End-to-end latency of one inference under ``latency_model``."""
    energy_j: float
    """Energy of all nodes for one inference."""
    device_energy_j: float
    """The requesting device's share of ``energy_j``."""
    noise: float
    """Predicted quantization noise (0 when nothing is quantized)."""
    memory_bytes: Mapping[str, float]
    """Per node: weights plus activations present on it."""
    compute_s: Mapping[str, float]
    """Per node: total compute time of its blocks."""
    transfer_s: Mapping[tuple[str, str], float]
    """Per link used (relayed hops on their own links): total transfer time, latency included."""
    transfer_bytes: Mapping[tuple[str, str], float]
    """Per link used: bytes sent."""
    latency_model: LatencyModel
    links: Mapping[str, LinkMode] = field(default_factory=dict)
    """The link modes priced, tensor → mode, only those other than :data:`FP32_LINK`."""
    codec_s: Mapping[str, float] = field(default_factory=dict)
    """Per node: time spent encoding and decoding link tensors (0 without link modes)."""


@dataclass(frozen=True)
class Violation:
    """A bound a plan does not meet."""

    constraint: str
    """``noise``, ``device-energy`` or ``memory:<node>``."""
    value: float
    bound: float


def evaluate(
    problem: PlanningProblem,
    assignment: Mapping[str, str],
    quantized: Collection[str] = (),
    latency_model: LatencyModel | None = None,
    links: Mapping[str, LinkMode] | None = None,
) -> Evaluation:
    """Price ``assignment`` (block → node) with ``quantized`` blocks at int8 and tensors
    crossing links in ``links`` (tensor → mode; absent ones as computed).

    ``latency_model`` defaults to the problem's. Raises :class:`AssignmentError` for unknown or
    missing blocks or nodes, a block that cannot be quantized or a link mode the problem does
    not offer, and :class:`InputError` when a tensor would need a route the infrastructure does
    not have.
    """
    graph, infra = problem.graph, problem.infra
    links = {t: m for t, m in (links or {}).items() if m != FP32_LINK}
    _check(problem, assignment, quantized)
    _check_links(problem, quantized, links)
    model = latency_model or problem.latency_model
    tally = _Tally(problem, assignment, quantized, links)
    for tensor in graph.tensors:
        if tensor.producer is None:
            tally.send(tensor, ready_s=0.0)
    reads = _consumed_tensors(graph)
    finish_s: dict[str, float] = {}
    for block in graph.blocks:  # topological order: producers finish before consumers start
        node = assignment[block.name]
        start_s = max((tally.arrival_s[(t.name, node)] for t in reads[block.name]), default=0.0)
        finish_s[block.name] = start_s + tally.compute_block(block.name)
        for name in block.outputs:
            tally.send(graph.tensor_by_name[name], ready_s=finish_s[block.name])

    compute, transfer_s = tally.compute_s, tally.transfer_s
    busy = {k: compute[k] + tally.codec_s[k] for k in compute}
    if model == "sum":
        latency_s = sum(busy.values()) + sum(transfer_s.values())
    else:
        returned = [
            tally.arrival_s[(t.name, infra.device)] for t in graph.tensors if t.is_model_output
        ]
        latency_s = max([*finish_s.values(), *returned, *busy.values(), 0.0])
    latency_s += overhead_s(problem, assignment, quantized)
    energy = energy_per_node(infra, busy, transfer_s)
    lossy = [link_variable(t, m.precision) for t, m in links.items() if m.precision != "fp32"]
    return Evaluation(
        latency_s=latency_s,
        energy_j=sum(energy.values()),
        device_energy_j=energy[infra.device],
        noise=problem.noise.predict([*quantized, *lossy]) if problem.noise is not None else 0.0,
        memory_bytes=tally.memory_bytes,
        compute_s=compute,
        transfer_s=transfer_s,
        transfer_bytes=tally.transfer_bytes,
        latency_model=model,
        links=links,
        codec_s=tally.codec_s,
    )


def overhead_s(
    problem: PlanningProblem, assignment: Mapping[str, str], quantized: Collection[str] = ()
) -> float:
    """The requester's fixed costs of one request under ``assignment``, in seconds.

    ``request_s`` once; ``message_s`` for every hop of every transfer (the runtime's own cost
    of a message, which the link probes, lighter than the agents, do not carry); and one local
    message (requester ↔ the agent on its own host, a hop no link prices) for each model input
    read on the device (or returned as a model output) and each model output produced there, at
    its wire size. The runtime bundles a node's inputs in
    one message and a component's outputs in its report, so models with several inputs or
    outputs are charged a few messages too many: a bound on the truth, exact for one input and
    one output. These costs are serial (the requester's and the agent's event loops), so the
    critical path adds them too.
    Not priced in energy: they are the requester's bookkeeping, not computing or transmitting.
    """
    infra, overhead = problem.infra, problem.overhead
    device = infra.device
    total = overhead.request_s
    for tensor in problem.graph.tensors:
        producer = tensor.producer
        source = assignment[producer] if producer else device
        targets = {assignment[c] for c in tensor.consumers}
        if tensor.is_model_output:
            targets.add(device)
        hops = sum(len(infra.route(source, target).hops) for target in targets - {source})
        total += overhead.message_s * hops
        if producer is None:
            if device in targets:
                total += overhead.local_message_s(tensor.bytes)
        elif tensor.is_model_output and source == device:
            total += overhead.local_message_s(wire_bytes(tensor, _precision(producer, quantized)))
    return total


def energy_per_node(
    infra: Infra, compute_s: Mapping[str, float], transfer_s: Mapping[tuple[str, str], float]
) -> dict[str, float]:
    """Joules each node spends: compute power × its compute time plus transmit power × the
    time of every transfer it sends (latency included).

    The one energy formula: :func:`evaluate` applies it to predicted times, and a live run's
    report applies it to measured ones, so predicted and measured energy mean the same thing.
    """
    return {
        node.name: node.compute_power_w * compute_s.get(node.name, 0.0)
        + node.transmit_power_w
        * sum(s for (sender, _), s in transfer_s.items() if sender == node.name)
        for node in infra.nodes
    }


def violations(problem: PlanningProblem, evaluation: Evaluation) -> tuple[Violation, ...]:
    """Bounds of ``problem`` that ``evaluation`` breaks, with a relative tolerance of 1e-6."""
    found = []
    bounds = problem.bounds
    if bounds.noise_max is not None and _above(evaluation.noise, bounds.noise_max):
        found.append(Violation("noise", evaluation.noise, bounds.noise_max))
    budget = bounds.device_energy_budget_j
    if budget is not None and _above(evaluation.device_energy_j, budget):
        found.append(Violation("device-energy", evaluation.device_energy_j, budget))
    if bounds.memory:
        for node in problem.infra.nodes:
            used = evaluation.memory_bytes[node.name]
            if _above(used, node.memory_bytes):
                found.append(Violation(f"memory:{node.name}", used, node.memory_bytes))
    return tuple(found)


class _Tally:
    """Accumulates compute, transfers, memory and arrival times while walking the graph."""

    def __init__(
        self,
        problem: PlanningProblem,
        assignment: Mapping[str, str],
        quantized: Collection[str],
        links: Mapping[str, LinkMode],
    ) -> None:
        self._problem = problem
        self._assignment = assignment
        self._precision = {b: _precision(b, quantized) for b in problem.graph.block_names}
        self._links = links
        nodes = problem.infra.node_names
        self.compute_s = dict.fromkeys(nodes, 0.0)
        self.codec_s = dict.fromkeys(nodes, 0.0)
        self.memory_bytes = dict.fromkeys(nodes, 0.0)
        self.transfer_s: dict[tuple[str, str], float] = {}
        self.transfer_bytes: dict[tuple[str, str], float] = {}
        self.arrival_s: dict[tuple[str, str], float] = {}
        """(tensor, node) → when the tensor is ready on that node."""

    def compute_block(self, block: str) -> float:
        """Charge ``block`` to its node (time and weights); return its compute time."""
        node, precision = self._assignment[block], self._precision[block]
        seconds = self._problem.compute_s(block, node, precision)
        self.compute_s[node] += seconds
        size = self._problem.graph.block(block).weight_bytes
        self.memory_bytes[node] += weight_bytes(size, precision)
        return seconds

    def send(self, tensor: Tensor, ready_s: float) -> None:
        """Send ``tensor`` from its source to each destination node once, hop by hop."""
        infra = self._problem.infra
        producer = tensor.producer
        source = self._assignment[producer] if producer else infra.device
        targets = {self._assignment[c] for c in tensor.consumers}
        if tensor.is_model_output:
            targets.add(infra.device)
        self.arrival_s[(tensor.name, source)] = ready_s
        self.memory_bytes[source] += tensor.bytes
        precision = self._precision[producer] if producer else "fp32"
        mode = self._links.get(tensor.name, FP32_LINK)
        size = sent_bytes(self._problem, tensor, precision, mode)
        for target in sorted(targets - {source}):
            encoding = encode_s(self._problem, tensor, precision, mode, source)
            decoding = decode_s(self._problem, tensor, precision, mode, target)
            self.codec_s[source] += encoding
            self.codec_s[target] += decoding
            arrival_s = ready_s + encoding + decoding
            for link, seconds in infra.route(source, target).hop_s(size):
                key = (link.source, link.target)
                self.transfer_s[key] = self.transfer_s.get(key, 0.0) + seconds
                self.transfer_bytes[key] = self.transfer_bytes.get(key, 0.0) + size
                arrival_s += seconds
            self.arrival_s[(tensor.name, target)] = arrival_s
            self.memory_bytes[target] += tensor.bytes


def _consumed_tensors(graph: LayerGraph) -> dict[str, list[Tensor]]:
    """Block → the tensors it reads, from the tensors' consumer lists (as the MILP sees them)."""
    reads: dict[str, list[Tensor]] = {name: [] for name in graph.block_names}
    for tensor in graph.tensors:
        for consumer in dict.fromkeys(tensor.consumers):
            reads[consumer].append(tensor)
    return reads


def _precision(block: str, quantized: Collection[str]) -> Precision:
    return "int8" if block in quantized else "fp32"


def _above(value: float, bound: float) -> bool:
    return value > bound + 1e-6 * max(1.0, abs(bound))


def _check(
    problem: PlanningProblem, assignment: Mapping[str, str], quantized: Collection[str]
) -> None:
    graph = problem.graph
    missing = [b for b in graph.block_names if b not in assignment]
    known = set(graph.block_names)
    unknown = [b for b in assignment if b not in known]
    if missing or unknown:
        raise AssignmentError(
            f"assignment misses {len(missing)} block(s) and names {len(unknown)} unknown one(s)"
            f"{f', first missing {missing[0]!r}' if missing else ''}"
            f"{f', first unknown {unknown[0]!r}' if unknown else ''}",
            field="assignment",
            fix="assign every block of the graph, and only those",
        )
    nodes = set(problem.infra.node_names)
    stray = sorted({n for n in assignment.values() if n not in nodes})
    if stray:
        raise AssignmentError(
            f"assignment uses unknown node(s) {', '.join(map(repr, stray))}",
            field="assignment",
            fix=f"use the infrastructure's nodes: {', '.join(sorted(nodes))}",
        )
    allowed = set(problem.quantizable)
    wrong = [b for b in quantized if b not in allowed]
    if wrong:
        raise AssignmentError(
            f"{len(wrong)} block(s) cannot be quantized, first {wrong[0]!r}",
            field="quantized",
            fix="quantize only blocks in the noise model's set with int8 timings on every node",
        )


def _check_links(
    problem: PlanningProblem, quantized: Collection[str], links: Mapping[str, LinkMode]
) -> None:
    graph = problem.graph
    wrong = [t for t, m in links.items() if m not in problem.link_modes(t)]
    lossy_after_int8 = [
        t
        for t, m in links.items()
        if m.precision != "fp32" and graph.tensor_by_name[t].producer in set(quantized)
    ]
    if wrong or lossy_after_int8:
        first = (wrong or lossy_after_int8)[0]
        raise AssignmentError(
            f"{len(wrong)} link mode(s) the problem does not offer and {len(lossy_after_int8)} "
            f"lossy link(s) after a quantized block, first on tensor {first!r}",
            field="link_precision",
            fix="choose modes from PlanningProblem.link_modes(tensor), and no link precision "
            "for a quantized block's output (it already crosses as int8)",
        )
