"""Small LayerGraphs, profiles and noise models built directly (no ONNX), for planner tests."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence

from qsplit.infra import Infra, Link, Node, PinnedRoute
from qsplit.model import Block, LayerGraph, ModelInfo, Tensor
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.quant import NoisePolynomial, NoiseTerm

SHA = "0" * 64


def graph(
    weights: dict[str, int],
    tensors: Iterable[tuple[str, str | None, Sequence[str], int, bool]],
) -> LayerGraph:
    """Blocks in the order given (must be topological); tensors as
    ``(name, producer, consumers, bytes, is_model_output)``."""
    tensor_objs = tuple(
        Tensor(name, producer, tuple(consumers), (size // 4,), "float32", size, out)
        for name, producer, consumers, size, out in tensors
    )
    blocks = []
    for name, weight in weights.items():
        ins = tuple(t.name for t in tensor_objs if name in t.consumers)
        outs = tuple(t.name for t in tensor_objs if t.producer == name)
        blocks.append(
            Block(
                name=name,
                onnx_nodes=(name,),
                op_types=("Conv",),
                inputs=ins,
                outputs=outs,
                macs=1,
                weight_bytes=weight,
                output_bytes=sum(t.bytes for t in tensor_objs if t.producer == name),
            )
        )
    model = ModelInfo(path="test.onnx", sha256=SHA, inputs=(), outputs=())
    return LayerGraph(model=model, granularity="block", blocks=tuple(blocks), tensors=tensor_objs)


def infra(
    nodes: Sequence[tuple[str, float, float, int]],
    links: Iterable[tuple[str, str, float, float]],
    routes: Iterable[tuple[str, str, tuple[str, ...]]] = (),
) -> Infra:
    """Nodes as ``(name, compute W, transmit W, memory bytes)``; the first is the device.
    Links as ``(from, to, bandwidth B/s, latency s)``; pinned routes as ``(from, to, via)``."""
    return Infra(
        device=nodes[0][0],
        nodes=tuple(
            Node(name, "device" if i == 0 else "edge", pc, px, mem)
            for i, (name, pc, px, mem) in enumerate(nodes)
        ),
        links=tuple(Link(*lk) for lk in links),
        routes=tuple(PinnedRoute(*r) for r in routes),
    )


def profile(node: str, times: dict[str, tuple[float, float | None]]) -> ComputeProfile:
    return ComputeProfile(
        node=node,
        model_sha256=SHA,
        granularity="block",
        blocks={b: BlockTiming(fp32_s=f, int8_s=q) for b, (f, q) in times.items()},
    )


def noise(quantizable: Sequence[str], intercept: float, terms: dict[tuple[str, ...], float]):
    return NoisePolynomial(
        model_sha256=SHA,
        quantizable=tuple(quantizable),
        intercept=intercept,
        terms=tuple(NoiseTerm(blocks, c) for blocks, c in terms.items()),
        degree=max((len(b) for b in terms), default=1),
    )


def random_dag(rng: random.Random, n_blocks: int) -> LayerGraph:
    """A random DAG: blocks mostly read 1–2 earlier tensors (some fan out); now and then a block
    reads nothing (a constant generator) or the model input is also returned as an output."""
    names = [f"b{i}" for i in range(n_blocks)]
    readers: dict[str, list[str]] = {"in": []}
    producer_of = {"in": None}
    for i, name in enumerate(names):
        producer_of[f"t{i}"] = name
        readers[f"t{i}"] = []
        available = ["in", *(f"t{j}" for j in range(i))]
        picks = {available[-1] if rng.random() < 0.6 else rng.choice(available)}
        if rng.random() < 0.3:
            picks.add(rng.choice(available))
        if i > 0 and rng.random() < 0.05:
            picks = set()
        for t in sorted(picks):
            readers[t].append(name)
    last = f"t{n_blocks - 1}"
    tensors = []
    for t, consumers in readers.items():
        is_out = t == last or (not consumers and t != "in") or rng.random() < 0.1
        tensors.append((t, producer_of[t], consumers, rng.randrange(1, 200) * 4000, is_out))
    weights = {name: rng.randrange(0, 50) * 10_000 for name in names}
    return graph(weights, tensors)


def all_assignments(blocks: Sequence[str], nodes: Sequence[str]):
    for combo in itertools.product(nodes, repeat=len(blocks)):
        yield dict(zip(blocks, combo, strict=True))
