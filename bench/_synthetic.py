"""Synthetic planning inputs of any size: a YOLO-like branchy graph on a device–edge–cloud mesh.

Used by the planner benchmarks to measure solve time against graph size and node count, where
no measured model of that size exists. The shape follows what makes real detectors hard to
split: a trunk of modules that each fork into parallel branches and re-join (C2f/Concat), long
skip connections from the backbone into the neck (FPN), activations that shrink with depth, and
a few heavy quantizable convolutions whose noise interacts (a full degree-3 polynomial, like the
prototype's regressor). Everything is drawn from a seeded generator, so a size is reproducible.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from qsplit.infra import Infra, Link, Node
from qsplit.model import Block, LayerGraph, ModelInfo, Tensor, TensorSpec
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.quant import NoisePolynomial, NoiseTerm

_ROLES = ("device", "edge", "cloud")
_SPEEDUP = {"device": 1.0, "edge": 2.4, "cloud": 60.0}
"""Compute speed relative to the device (the prototype measured ~2.3× edge, ~60× cloud GPU)."""
_POWER_W = {"device": (2.9165, 3.507), "edge": (5.833, 2.265), "cloud": (35.0, 0.014)}
_EGRESS_BYTES_PER_S = {"device": 5 * 2**20, "edge": 20 * 2**20, "cloud": 100 * 2**20}
_LATENCY_S = {
    frozenset({"device"}): 0.002,
    frozenset({"edge"}): 0.002,
    frozenset({"cloud"}): 0.001,
    frozenset({"device", "edge"}): 0.005,
    frozenset({"device", "cloud"}): 0.055,
    frozenset({"edge", "cloud"}): 0.050,
}


@dataclass(frozen=True)
class SyntheticInputs:
    """What ``qsplit plan`` reads, generated instead of measured."""

    graph: LayerGraph
    profiles: dict[str, ComputeProfile]
    noise: NoisePolynomial
    infra: Infra


def synthetic_inputs(
    blocks: int,
    nodes: int = 3,
    *,
    quantizable: int = 12,
    seed: int = 0,
    constants: int = 0,
    activations: int = 0,
) -> SyntheticInputs:
    """A branchy graph of exactly ``blocks`` blocks on ``nodes`` machines (device first).

    ``constants`` of the blocks are constant generators: no input, no work, their output read by
    one computing block. That is what a model exported with its weights as ONNX ``Constant``
    nodes looked like at node granularity before ``load_model`` lifted them into initializers.
    ``activations`` (even) of the blocks are SiLU activations split into ONNX's ``Sigmoid`` and
    ``Mul``: tiny elementwise blocks on a convolution's full-size output, with a skip around
    the Sigmoid, which is what a detector like YOLO is mostly made of at node granularity.
    """
    rng = np.random.default_rng(seed)
    graph = _branchy_graph(blocks - constants - activations, rng)
    graph = _with_constants(_with_activations(graph, activations, rng), constants, rng)
    infra = _mesh(nodes)
    heavy = sorted(graph.blocks, key=lambda b: -b.macs)[:quantizable]
    chosen = tuple(sorted((b.name for b in heavy), key=graph.position))
    base_s = {
        b.name: b.macs * 3e-11 * rng.lognormal(0.0, 0.3) if b.inputs else CONSTANT_S
        for b in graph.blocks
    }
    profiles = {
        node.name: _profile(graph, node.name, node.role, base_s, set(chosen), rng)
        for node in infra.nodes
    }
    return SyntheticInputs(graph, profiles, _noise(graph, chosen, rng), infra)


def _branchy_graph(size: int, rng: np.random.Generator) -> LayerGraph:
    names: list[str] = []
    reads: dict[str, list[str]] = {}
    macs: dict[str, int] = {}
    tensor_bytes: dict[str, int] = {"input": 3 * 640 * 640 * 4}
    producer: dict[str, str | None] = {"input": None}
    backbone: list[str] = []

    def add(inputs: list[str], level: int) -> str:
        name = f"/model.{len(names) // 12}/n{len(names)}"
        names.append(name)
        reads[name] = inputs
        side = 320 >> min(level, 5)
        channels = 32 << min(level, 4)
        out = f"{name}_out"
        tensor_bytes[out] = side * side * channels * 4
        producer[out] = name
        macs[name] = int(side * side * channels * channels * rng.uniform(1.0, 9.0))
        return out

    current, level = add(["input"], 0), 0
    while len(names) < size - 1:
        left = size - 1 - len(names)
        if left < 4:
            current = add([current], level)
            continue
        width = int(rng.integers(2, 4))
        length = int(rng.integers(1, 4))
        if width * length + 2 > left:
            width, length = 1, left - 2
        split = add([current], level)
        tails = []
        for _ in range(width):
            tail = split
            for _ in range(length):
                tail = add([tail], level)
            tails.append(tail)
        if backbone and rng.random() < 0.2:
            tails.append(backbone[int(rng.integers(0, len(backbone)))])
        current = add(tails, level)
        backbone.append(current)
        if rng.random() < 0.25:
            level += 1
    add([current], level)

    consumers: dict[str, list[str]] = {t: [] for t in producer}
    for name in names:
        for t in dict.fromkeys(reads[name]):
            consumers[t].append(name)
    last_output = f"{names[-1]}_out"
    tensors = tuple(
        Tensor(
            name=t,
            producer=producer[t],
            consumers=tuple(consumers[t]),
            shape=(tensor_bytes[t] // 4,),
            dtype="float32",
            bytes=tensor_bytes[t],
            is_model_output=t == last_output,
        )
        for t in producer
        if consumers[t] or t == last_output
    )
    blocks = tuple(
        Block(
            name=n,
            onnx_nodes=(n,),
            op_types=("Conv",),
            inputs=tuple(dict.fromkeys(reads[n])),
            outputs=(f"{n}_out",),
            macs=macs[n],
            weight_bytes=int(macs[n] // 400),
            output_bytes=tensor_bytes[f"{n}_out"],
        )
        for n in names
    )
    model = ModelInfo(
        path="synthetic",
        sha256=f"synthetic-{size}",
        inputs=(TensorSpec("input", (1, 3, 640, 640), "float32"),),
        outputs=(TensorSpec(last_output, (tensor_bytes[last_output] // 4,), "float32"),),
    )
    return LayerGraph(model=model, granularity="node", blocks=blocks, tensors=tensors)


CONSTANT_S = 2e-6
"""Time of a constant generator on the device (ORT returns a Constant's tensor in microseconds)."""


def _with_constants(graph: LayerGraph, count: int, rng: np.random.Generator) -> LayerGraph:
    """``graph`` with ``count`` constant blocks, each feeding one computing block its weights.

    A constant is placed in the topological order just before its reader; the reader's weight
    bytes move to the constant's output tensor (the weights now arrive as an input).
    """
    if count == 0:
        return graph
    readers = rng.choice(len(graph.blocks), size=count, replace=count > len(graph.blocks))
    feeds: dict[str, list[str]] = {}
    for index in sorted(readers.tolist()):
        reader = graph.blocks[index]
        feeds.setdefault(reader.name, []).append(
            f"{reader.name}/Constant{len(feeds.get(reader.name, []))}"
        )
    blocks: list[Block] = []
    tensors = list(graph.tensors)
    for block in graph.blocks:
        constants = feeds.get(block.name, [])
        size = max(block.weight_bytes // max(len(constants), 1), 4)
        for name in constants:
            out = f"{name}_out"
            tensors.append(Tensor(out, name, (block.name,), (size // 4,), "float32", size, False))
            blocks.append(Block(name, (name,), ("Constant",), (), (out,), 0, size, size))
        blocks.append(
            replace(
                block,
                inputs=(*block.inputs, *(f"{n}_out" for n in constants)),
                weight_bytes=0 if constants else block.weight_bytes,
            )
        )
    return replace(graph, blocks=tuple(blocks), tensors=tuple(tensors))


def _with_activations(graph: LayerGraph, count: int, rng: np.random.Generator) -> LayerGraph:
    """``graph`` with ``count // 2`` of its blocks followed by a SiLU (``Sigmoid`` and ``Mul``).

    The convolution's output ``t`` feeds the Sigmoid and the Mul, the Mul reads the Sigmoid's
    output too and its own output replaces ``t`` for ``t``'s readers. Both new blocks do one
    operation per element (``macs`` = elements), so they cost a fraction of a percent of the
    convolution, while each of their tensors is as large as its output.
    """
    if count == 0:
        return graph
    chosen = {graph.blocks[i].name for i in rng.choice(len(graph.blocks), count // 2, False)}
    renamed: dict[str, str] = {}  # a chosen block's output → its Mul's
    blocks: list[Block] = []
    tensors = {t.name: t for t in graph.tensors}
    for block in graph.blocks:
        block = replace(block, inputs=tuple(renamed.get(t, t) for t in block.inputs))
        blocks.append(block)
        if block.name not in chosen:
            continue
        (out,) = block.outputs
        old = tensors[out]
        sigmoid, mul = f"{block.name}/Sigmoid", f"{block.name}/Mul"
        elements = old.bytes // 4
        tensors[out] = replace(old, consumers=(sigmoid, mul), is_model_output=False)
        tensors[f"{sigmoid}_out"] = replace(
            old, name=f"{sigmoid}_out", producer=sigmoid, consumers=(mul,), is_model_output=False
        )
        tensors[f"{mul}_out"] = replace(old, name=f"{mul}_out", producer=mul)
        renamed[out] = f"{mul}_out"
        for name, op, reads in (
            (sigmoid, "Sigmoid", (out,)),
            (mul, "Mul", (out, f"{sigmoid}_out")),
        ):
            blocks.append(
                Block(name, (name,), (op,), reads, (f"{name}_out",), elements, 0, old.bytes)
            )
    model = graph.model
    if model.outputs[0].name in renamed:
        spec = model.outputs[0]
        model = replace(model, outputs=(replace(spec, name=renamed[spec.name]),))
    return replace(graph, model=model, blocks=tuple(blocks), tensors=tuple(tensors.values()))


def _mesh(count: int) -> Infra:
    roles = ["device"] + [("edge", "cloud")[i % 2] for i in range(count - 1)]
    names = ["device"] + [
        f"{role}{roles[1 : i + 1].count(role)}" for i, role in enumerate(roles) if i
    ]
    nodes = tuple(
        Node(
            name=name,
            role=role,  # type: ignore[arg-type]
            compute_power_w=_POWER_W[role][0],
            transmit_power_w=_POWER_W[role][1],
            memory_bytes=16 * 2**30,
        )
        for name, role in zip(names, roles, strict=True)
    )
    links = tuple(
        Link(
            source=a.name,
            target=b.name,
            bandwidth_bytes_per_s=_EGRESS_BYTES_PER_S[a.role],
            latency_s=_LATENCY_S[frozenset({a.role, b.role})],
        )
        for a, b in itertools.permutations(nodes, 2)
    )
    return Infra(device="device", nodes=nodes, links=links)


def _profile(
    graph: LayerGraph,
    node: str,
    role: str,
    base_s: dict[str, float],
    quantizable: set[str],
    rng: np.random.Generator,
) -> ComputeProfile:
    speed = _SPEEDUP[role] * rng.uniform(0.8, 1.25)
    blocks = {}
    for name in graph.block_names:
        fp32_s = base_s[name] / speed
        int8_s = fp32_s * rng.uniform(0.3, 0.8) if name in quantizable else None
        blocks[name] = BlockTiming(fp32_s=fp32_s, int8_s=int8_s)
    return ComputeProfile(
        node=node,
        model_sha256=graph.model.sha256,
        granularity=graph.granularity,
        blocks=blocks,
        settings={"source": "synthetic"},
    )


def _noise(graph: LayerGraph, chosen: tuple[str, ...], rng: np.random.Generator) -> NoisePolynomial:
    terms = []
    for degree in (1, 2, 3):
        scale = 0.02 / math.factorial(degree)
        for combo in itertools.combinations(chosen, degree):
            low = 0.2 * scale if degree == 1 else -scale
            terms.append(NoiseTerm(blocks=combo, coefficient=float(rng.uniform(low, scale))))
    return NoisePolynomial(
        model_sha256=graph.model.sha256,
        quantizable=chosen,
        intercept=0.005,
        terms=tuple(terms),
        degree=3,
        fit={"source": "synthetic"},
    )
