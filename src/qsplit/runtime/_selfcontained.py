"""Deployed models must be the bytes that were sent, and nothing else (issue 13, item 2).

An ONNX tensor may keep its data in an external file (``data_location: EXTERNAL`` with a
``location``); ONNX Runtime resolves that path against the loading process's working directory
(for a model given as bytes) or the model's folder, so a peer could deploy a component whose
"weights" are ``~/.ssh/id_rsa`` and read them back as an output. An agent therefore refuses any
model that refers to a file, whatever the path looks like, before ORT sees it: every tensor of
the model is checked — initializers, sparse initializers, tensors in node attributes, in
subgraphs (``If``/``Loop``/``Scan`` bodies) and in model-local functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx
from google.protobuf.message import DecodeError

from qsplit.errors import InputError


def check_self_contained(onnx_bytes: bytes, component: str) -> None:
    """Refuse (:class:`InputError`) a model that does not parse or refers to external data."""
    try:
        model = onnx.ModelProto.FromString(onnx_bytes)
    except DecodeError as exc:
        raise InputError(f"component {component!r} is not an ONNX model ({exc})") from None
    for where, tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            location = {e.key: e.value for e in tensor.external_data}.get("location", "?")
            raise InputError(
                f"component {component!r}: tensor {tensor.name!r} ({where}) refers to the file "
                f"{location!r}; an agent runs only the bytes it was sent",
                fix="save the model with its weights inside (onnx.save(..., "
                "save_as_external_data=False)) and deploy it again",
            )


def _tensors(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    yield from _graph_tensors(model.graph, "graph")
    for function in model.functions:
        yield from _node_tensors(function.node, f"function {function.name}")


def _graph_tensors(graph: onnx.GraphProto, where: str) -> Iterator[tuple[str, onnx.TensorProto]]:
    for tensor in graph.initializer:
        yield f"{where} initializer", tensor
    for sparse in graph.sparse_initializer:
        yield f"{where} sparse initializer", sparse.values
        yield f"{where} sparse initializer", sparse.indices
    yield from _node_tensors(graph.node, where)


def _node_tensors(
    nodes: Iterable[onnx.NodeProto], where: str
) -> Iterator[tuple[str, onnx.TensorProto]]:
    for node in nodes:
        at = f"{where}, node {node.name or node.op_type}"
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield at, attribute.t
            yield from ((at, t) for t in attribute.tensors)
            sparse = list(attribute.sparse_tensors)
            if attribute.HasField("sparse_tensor"):
                sparse.append(attribute.sparse_tensor)
            for one in sparse:
                yield at, one.values
                yield at, one.indices
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g, f"{at} subgraph")
            for graph in attribute.graphs:
                yield from _graph_tensors(graph, f"{at} subgraph")
