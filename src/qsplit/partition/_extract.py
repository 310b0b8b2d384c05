"""Extracting components as standalone ONNX models, in memory.

``onnx.utils.Extractor`` walks the graph backwards from the requested outputs and re-runs shape
inference for every call, which costs seconds on a detector. A component already knows its nodes,
inputs and outputs, and the LayerGraph knows every boundary tensor's type, so extraction here is
a lookup and a copy: nodes by name, the initializers they read, typed inputs and outputs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import helper

from qsplit.errors import AssignmentError
from qsplit.model import LayerGraph, LoadedModel
from qsplit.model._analyze import node_inputs
from qsplit.partition._component import Component


class ComponentExtractor:
    """Builds standalone ONNX models for components of one (normalised) model.

    Index the model once, then :meth:`extract` any number of components cheaply.
    """

    def __init__(self, model: LoadedModel, graph: LayerGraph) -> None:
        self._model = model.proto
        self._graph = graph
        self._nodes = {n.name: (i, n) for i, n in enumerate(model.proto.graph.node)}
        self._initializers = {t.name: t for t in model.proto.graph.initializer}
        self._reads = {n.name: node_inputs(n) for n in model.proto.graph.node}

    def extract(self, component: Component) -> onnx.ModelProto:
        """A standalone model computing ``component.outputs`` from ``component.inputs``."""
        onnx_nodes = self._onnx_nodes(component.blocks)
        used = dict.fromkeys(i for n in onnx_nodes for i in self._reads[n.name])
        graph = helper.make_graph(
            nodes=onnx_nodes,
            name=component.name,
            inputs=[self._value_info(t) for t in component.inputs],
            outputs=[self._value_info(t) for t in component.outputs],
            initializer=[self._initializers[i] for i in used if i in self._initializers],
        )
        sub = helper.make_model(
            graph,
            opset_imports=list(self._model.opset_import),
            ir_version=self._model.ir_version,
            producer_name="qsplit",
        )
        sub.functions.extend(self._model.functions)
        helper.set_model_props(
            sub,
            {
                "qsplit.component": component.name,
                "qsplit.node": component.node,
                "qsplit.model_sha256": self._graph.model.sha256,
            },
        )
        return sub

    def _onnx_nodes(self, blocks: Iterable[str]) -> list[onnx.NodeProto]:
        names = [n for b in blocks for n in self._graph.block(b).onnx_nodes]
        try:
            indexed = sorted(self._nodes[n] for n in names)
        except KeyError as exc:
            raise AssignmentError(
                f"node {exc.args[0]!r} of the LayerGraph is not in the ONNX model",
                fix="analyse the same model file the graph was built from",
            ) from None
        return [node for _, node in indexed]

    def _value_info(self, name: str) -> onnx.ValueInfoProto:
        tensor = self._graph.tensor_by_name[name]
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(tensor.dtype))
        return helper.make_tensor_value_info(name, elem, list(tensor.shape))
