"""Build the node-granularity LayerGraph of a loaded model.

Each ONNX node becomes a block. Initializers are folded into the blocks that read them as
weight bytes, so the graph's tensors are exactly the values that could cross a link.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx

from qsplit.model._layergraph import Block, LayerGraph, Tensor
from qsplit.model._load import LoadedModel
from qsplit.model._macs import node_macs


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """Every value a node reads: its inputs and the outer-scope values its subgraphs use."""
    names = [i for i in node.input if i]
    for sub in _subgraphs(node):
        local = {i.name for i in sub.input} | {t.name for t in sub.initializer}
        for inner in sub.node:
            local.update(o for o in inner.output if o)
        for inner in sub.node:
            names.extend(i for i in node_inputs(inner) if i not in local)
    return list(dict.fromkeys(names))


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def build_node_graph(model: LoadedModel) -> LayerGraph:
    """One block per ONNX node, in the model's (topological) node order."""
    graph = model.proto.graph
    initializers = {t.name: t for t in graph.initializer}
    weight_shapes = {n: tuple(t.dims) for n, t in initializers.items()}
    shapes = {n: v.shape for n, v in model.values.items()}
    model_outputs = {o.name for o in graph.output}

    reads = {n.name: node_inputs(n) for n in graph.node}
    producer: dict[str, str | None] = {i.name: None for i in model.info.inputs}
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in reads[node.name]:
            if name not in initializers:
                consumers.setdefault(name, []).append(node.name)
        producer.update((o, node.name) for o in node.output if o)
    used = set(consumers) | model_outputs

    tensors = tuple(
        Tensor(
            name=name,
            producer=prod,
            consumers=tuple(dict.fromkeys(consumers.get(name, ()))),
            shape=model.values[name].shape,
            dtype=model.values[name].dtype,
            bytes=model.values[name].bytes,
            is_model_output=name in model_outputs,
        )
        for name, prod in producer.items()
        if name in used
    )
    tensor_bytes = {t.name: t.bytes for t in tensors}
    blocks = []
    for node in graph.node:
        outputs = tuple(o for o in node.output if o in used)
        blocks.append(
            Block(
                name=node.name,
                onnx_nodes=(node.name,),
                op_types=(node.op_type,),
                inputs=tuple(i for i in reads[node.name] if i not in initializers),
                outputs=outputs,
                macs=node_macs(node, shapes, weight_shapes),
                weight_bytes=sum(
                    _initializer_bytes(initializers[i])
                    for i in reads[node.name]
                    if i in initializers
                ),
                output_bytes=sum(tensor_bytes[o] for o in outputs),
            )
        )
    return LayerGraph(model=model.info, granularity="node", blocks=tuple(blocks), tensors=tensors)


def _initializer_bytes(tensor: onnx.TensorProto) -> int:
    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize
