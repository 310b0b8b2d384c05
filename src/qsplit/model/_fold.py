"""Constant folding: nodes computed from weights alone become weights.

An exporter's ``Constant → Cast → Reshape`` chain, or a ``Shape`` of an initializer, computes the
same tensor on every request. Left as nodes, each would be a block with no real input: placed and
timed apart from the layer that reads its result, and its result shipped over a link on every
request. Folded, the result is an initializer, counted in the weight bytes (and memory) of the
blocks that read it, as ONNX Runtime's own constant folding would make it at load.

Each node is evaluated with ``onnx.reference`` (the ONNX reference implementation), so no op's
semantics are written here. What stays a node: non-deterministic ops, ops with subgraphs,
Quantize/DequantizeLinear (ORT fuses a ``DequantizeLinear`` of int8 weights into the int8 kernel
that reads them; folding it would turn int8 weights into float ones), outputs that are model
outputs, and results much larger than their inputs (an ``Expand`` or ``ConstantOfShape`` of a few
bytes into megabytes is cheaper to compute than to store and copy).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

KEPT_OPS = frozenset(
    {
        "Constant",  # the ones still nodes were kept on purpose (strings, sparse, model outputs)
        "Bernoulli",
        "Multinomial",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
    }
)
"""Ops never folded, whatever their inputs (see the module docstring)."""

_SUBGRAPHS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)

GROWTH_BYTES = 2**20
"""A folded result may exceed its inputs' bytes by at most this much."""


def fold_constants(proto: onnx.ModelProto) -> None:
    """Replace, in the main graph, every node whose inputs are all initializers (directly or
    through nodes folded before it) by initializers holding its outputs."""
    graph = proto.graph
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    tensors = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    kept, folded, read_by_folded = [], [], set()
    for node in graph.node:
        values = _evaluate(node, tensors, outputs, opset)
        if values is None:
            kept.append(node)
            continue
        read_by_folded.update(n for n in node.input if n)
        for name, value in zip(node.output, values, strict=True):
            if not name:  # an optional output nobody reads
                continue
            tensor = numpy_helper.from_array(np.asarray(value), name)
            tensors[name] = tensor
            folded.append(tensor)
    if not folded:
        return
    still_read = {n for node in kept for n in node.input} | outputs
    unused = read_by_folded - still_read
    initializers = [t for t in graph.initializer if t.name not in unused]
    initializers += [t for t in folded if t.name not in unused]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    names = {t.name for t in folded}
    typed = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(typed)
    if proto.ir_version < 4:  # before IR 4 every initializer must also be a graph input
        inputs = [v for v in graph.input if v.name not in unused]
        inputs += [
            helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
            for t in folded
            if t.name not in unused
        ]
        del graph.input[:]
        graph.input.extend(inputs)


def _evaluate(
    node: onnx.NodeProto,
    tensors: dict[str, onnx.TensorProto],
    outputs: set[str],
    opset: int,
) -> list[np.ndarray] | None:
    """The outputs of ``node`` if it may be folded, else ``None``."""
    if (
        node.domain not in ("", "ai.onnx")
        or node.op_type in KEPT_OPS
        or any(o in outputs for o in node.output)
        or any(a.type in _SUBGRAPHS for a in node.attribute)
        or not all(name in tensors for name in node.input if name)
    ):
        return None
    from onnx.reference import ReferenceEvaluator

    feeds = {name: numpy_helper.to_array(tensors[name]) for name in node.input if name}
    try:
        evaluator = ReferenceEvaluator(node, opsets={"": opset})
        values = [np.asarray(v) for v in evaluator.run(None, feeds)]
    except Exception:  # an op or case the reference implementation lacks: the node stays
        return None
    size_in = sum(a.nbytes for a in feeds.values())
    if sum(v.nbytes for v in values) > size_in + GROWTH_BYTES:
        return None
    if len(values) != len(node.output) or any(v.dtype == object for v in values):
        return None
    return values
