"""Post-training static int8 (QDQ, per-channel weights) of any subset of blocks, fast.

ORT's ``QDQQuantizer`` takes ~0.7 s per call on YOLO11n, too slow for hundreds of noise samples.
So the whole model is quantized *once* (every node, ranges from one calibration) and a subset is
then carved out of that QDQ model: nodes of the chosen blocks keep their quantized inputs; other
nodes get back their original float inputs, except where they read the output of a quantized
producer, which ORT's subset quantization would also hand them dequantized. Q/DQ nodes nobody
reads any more are dropped. This costs a few milliseconds per subset.

ORT keeps the original node names and names Q/DQ nodes after the tensor they act on, so blocks
still map onto the quantized model; :func:`quantized_split_view` uses that to give a LayerGraph of
the quantized model in which a quantized producer's output crosses a link as an 8-bit tensor.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal, get_args

import onnx
from onnx import helper

from qsplit.errors import InputError
from qsplit.model import LayerGraph, LoadedModel, build_node_graph, load_model, merge_blocks
from qsplit.quant._calibration import Calibration

_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
ActivationType = Literal["uint8", "int8"]
ACTIVATION_TYPES: tuple[str, ...] = get_args(ActivationType)


class Quantizer:
    """Quantizes subsets of a model's blocks from one calibration.

    Weights are int8, symmetric, per output channel (per-tensor loses accuracy on depthwise and
    low-channel convolutions). Activations are 8-bit with a zero point (asymmetric), unsigned by
    default: ORT's x86 kernels without VNNI multiply unsigned activations by signed weights
    natively and run signed × signed through a slower path, which measured 1.5–2.5× slower than
    fp32 on an AVX2 machine. That native multiply adds pairs of products in saturating 16-bit
    arithmetic, so with unsigned activations weights use 7 bits (``reduce_range``, default on
    for uint8): at full 8 bits, saturation in YOLO11n's ``model.2`` alone multiplied the output
    noise by ten and cut mAP50 to 0.05 (docs/quantization.md). Profiler, noise model and
    runtime all quantize through this class, so they time, measure and run the same model.
    Blocks without any op ORT can quantize are listed in :attr:`unquantizable` and ignored by
    :meth:`quantize` instead of failing.
    """

    def __init__(
        self,
        model: LoadedModel,
        graph: LayerGraph,
        calibration: Calibration,
        *,
        activation_type: ActivationType = "uint8",
        reduce_range: bool | None = None,
    ) -> None:
        if activation_type not in ACTIVATION_TYPES:
            raise InputError(
                f"activation type {activation_type!r} is not supported",
                field="activation_type",
                fix=f"use one of {', '.join(ACTIVATION_TYPES)}",
            )
        self.activation_type = activation_type
        self.reduce_range = activation_type == "uint8" if reduce_range is None else reduce_range
        self.graph = graph
        self.calibration = calibration
        """The ranges everything here is quantized with (link quantization uses them too)."""
        self._model = model
        self._graph = graph
        self._original = {n.name: n for n in model.proto.graph.node}
        self._full = _quantize_all(model, calibration, activation_type, self.reduce_range)
        _unshadow_initializers(self._full, {t.name for t in model.proto.graph.initializer})
        self._full_nodes = {n.name: n for n in self._full.graph.node}
        produced_by = {o: n.name for n in self._full.graph.node for o in n.output}
        # DQ output -> original node whose output the Q/DQ pair quantizes (None: a weight).
        self._dq_source: dict[str, str | None] = {}
        for node in self._full.graph.node:
            if node.op_type == "DequantizeLinear":
                q = self._full_nodes.get(produced_by.get(node.input[0], ""))
                source = produced_by.get(q.input[0]) if q is not None else None
                self._dq_source[node.output[0]] = source if source in self._original else None
        touched = {
            name
            for name, node in self._original.items()
            if node.op_type in _quantizable_op_types()
            and (
                list(self._full_nodes[name].input) != list(node.input)
                or list(self._full_nodes[name].output) != list(node.output)
            )
        }
        self.unquantizable: tuple[str, ...] = tuple(
            b.name for b in graph.blocks if not touched.intersection(b.onnx_nodes)
        )
        """Blocks with no op ORT quantizes (e.g. only Reshape/Shape arithmetic on constants)."""
        self._initializers = {t.name: t for t in self._full.graph.initializer}
        for t in model.proto.graph.initializer:
            self._initializers.setdefault(t.name, t)

    @property
    def settings(self) -> dict[str, str]:
        """How blocks are quantized, for the files that record results obtained with it."""
        return {
            "format": "QDQ",
            "weights": f"int8{' (7-bit range)' if self.reduce_range else ''} symmetric per-channel",
            "activations": f"{self.activation_type} asymmetric",
            "calibration": "minmax",
        }

    @property
    def quantizable(self) -> tuple[str, ...]:
        """Blocks quantization applies to, in graph order."""
        skip = set(self.unquantizable)
        return tuple(b for b in self._graph.block_names if b not in skip)

    def quantize(self, blocks: Iterable[str]) -> onnx.ModelProto:
        """The model with exactly ``blocks`` in QDQ int8 (unquantizable ones are ignored)."""
        chosen = {n for b in blocks for n in self._graph.block(b).onnx_nodes}
        kept: list[onnx.NodeProto] = []
        original_outputs: set[str] = set()
        for name, node in self._original.items():
            if name in chosen:
                kept.append(self._full_nodes[name])
                continue
            full = self._full_nodes[name]
            inputs = [
                q if self._dq_source.get(q) in chosen else o
                for q, o in zip(full.input, node.input, strict=True)
            ]
            outputs = list(node.output)
            if inputs != list(node.input):
                node = onnx.NodeProto()
                node.CopyFrom(self._original[name])
                del node.input[:]
                node.input.extend(inputs)
            kept.append(node)
            original_outputs.update(outputs)
        kept.extend(self._needed_qdq(kept, original_outputs))
        nodes = _topological(kept)
        used = {i for n in nodes for i in n.input}
        graph = helper.make_graph(
            nodes,
            self._full.graph.name,
            inputs=list(self._model.proto.graph.input),
            outputs=list(self._model.proto.graph.output),
            initializer=[t for name, t in self._initializers.items() if name in used],
        )
        result = helper.make_model(
            graph, opset_imports=list(self._full.opset_import), ir_version=self._full.ir_version
        )
        result.functions.extend(self._full.functions)
        return result

    def _needed_qdq(
        self, kept: list[onnx.NodeProto], original_outputs: set[str]
    ) -> list[onnx.NodeProto]:
        """Q/DQ nodes of the full model that feed ``kept`` or a model output (transitively)."""
        needed = {i for n in kept for i in n.input} | {o.name for o in self._full.graph.output}
        result = []
        for node in reversed(self._full.graph.node):
            if node.name in self._original or node.op_type not in _QDQ_OPS:
                continue
            if any(o in needed and o not in original_outputs for o in node.output):
                result.append(node)
                needed.update(node.input)
        return result


def _quantizable_op_types() -> list[str]:
    """Op types ORT has a QDQ (or QLinear) implementation for."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QDQRegistry) | set(QLinearOpsRegistry))


def _quantize_all(
    model: LoadedModel,
    calibration: Calibration,
    activation_type: ActivationType,
    reduce_range: bool,
) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    quantizer = QDQQuantizer(
        copy.deepcopy(model.proto),
        True,  # per_channel
        reduce_range,
        QuantType.QInt8,  # weights
        QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,  # activations
        calibration.tensors_data(),
        [n.name for n in model.proto.graph.node],
        [],
        _quantizable_op_types(),
        # Keep Relu/Clip: removing them is only exact when every neighbour is quantized, and a
        # subset carved out of this model may leave a neighbour in float.
        {"QDQKeepRemovableActivations": True},
    )
    return quantizer.quantize_model()


def _unshadow_initializers(full: onnx.ModelProto, float_names: set[str]) -> None:
    """Rename DQ outputs that reuse the name of a float initializer they replace.

    ORT names a quantized bias's DequantizeLinear output after the float bias it removes. A
    subset model needs both (float for unquantized readers, dequantized for quantized ones), so
    the dequantized one gets its own name.
    """
    renamed = {}
    for node in full.graph.node:
        for i, name in enumerate(node.output):
            if name in float_names:
                renamed[name] = node.output[i] = f"{name}_dq"
    for node in full.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed and node.op_type != "DequantizeLinear":
                node.input[i] = renamed[name]


def _topological(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """``nodes`` reordered so producers come first, otherwise keeping the given order.

    ORT appends bias DequantizeLinear nodes at the end of the graph; ONNX and qsplit's analysis
    want a topological node list.
    """
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    done: set[int] = set()
    order: list[onnx.NodeProto] = []

    def visit(index: int) -> None:
        stack = [(index, False)]
        while stack:
            i, expanded = stack.pop()
            if i in done:
                continue
            if expanded:
                done.add(i)
                order.append(nodes[i])
                continue
            stack.append((i, True))
            for name in reversed(nodes[i].input):
                p = producer.get(name)
                if p is not None and p not in done:
                    stack.append((p, False))

    for i in range(len(nodes)):
        visit(i)
    return order


def quantized_split_view(
    quantized: onnx.ModelProto, graph: LayerGraph, quantized_blocks: Iterable[str]
) -> tuple[LoadedModel, LayerGraph]:
    """The quantized model and a LayerGraph of it with ``graph``'s block names.

    :func:`qsplit.partition.components` and :class:`~qsplit.partition.ComponentExtractor`
    apply to the result unchanged. Q/DQ nodes are given to blocks so that the cut falls at the
    QuantizeLinear output: a QuantizeLinear on the output of a quantized block belongs to that
    block, its DequantizeLinear to the reader, so the tensor crossing a link is 8-bit; a
    DequantizeLinear read by several nodes is first copied once per reader, so that no reader
    depends on another block's dequantized float. Other Q/DQ nodes (on weights, on float
    producers' outputs) belong to the block that reads them.
    """
    proto = _dequantize_per_reader(quantized)
    owner = {n: b.name for b in graph.blocks for n in b.onnx_nodes}
    chosen = {n for b in quantized_blocks for n in graph.block(b).onnx_nodes}
    producer = {o: n.name for n in proto.graph.node for o in n.output}
    after_producer = {}
    for node in proto.graph.node:  # the Q right after a quantized block goes with it
        source = producer.get(node.input[0]) if node.input else None
        if node.op_type == "QuantizeLinear" and source in chosen:
            after_producer[node.name] = owner[source]
    return split_view(proto, graph, after_producer)


def split_view(
    proto: onnx.ModelProto, graph: LayerGraph, placed: Mapping[str, str]
) -> tuple[LoadedModel, LayerGraph]:
    """``proto`` (``graph``'s model with nodes added) and a LayerGraph of it with ``graph``'s
    block names.

    Nodes of ``graph`` stay in their blocks and ``placed`` gives added nodes their block;
    any other added node goes to the block of its first reader (so a DequantizeLinear or a
    Cast back to float runs where its value is used), or, when only a model output reads it,
    to its producer's block. The LayerGraph is built from scratch so that its tensors are the
    ones that now cross between blocks.
    """
    with tempfile.TemporaryDirectory(prefix="qsplit-view-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(proto, path)
        model = load_model(path)
    nodes = build_node_graph(model)
    proto_nodes = list(model.proto.graph.node)
    producer = {o: n.name for n in proto_nodes for o in n.output}
    label = {n: b.name for b in graph.blocks for n in b.onnx_nodes}
    label.update(placed)
    readers: dict[str, list[str]] = {}
    for node in proto_nodes:
        for i in node.input:
            readers.setdefault(i, []).append(node.name)
    for node in reversed(proto_nodes):
        if node.name not in label:
            first = next(
                (label[r] for o in node.output for r in readers.get(o, ()) if r in label), None
            )
            if first is not None:
                label[node.name] = first
    for node in proto_nodes:
        if node.name not in label:
            label[node.name] = label[producer[node.input[0]]]
    groups = [
        [n.name for n in proto_nodes if label[n.name] == block] for block in graph.block_names
    ]
    return model, merge_blocks(nodes, groups, list(graph.block_names))


def _dequantize_per_reader(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every DequantizeLinear read by several nodes copied once per reader.

    The split view gives a DequantizeLinear to (the block of) its reader, so that the int8
    tensor is what crosses a link; a DequantizeLinear shared by readers in different blocks
    would make its float output cross instead (YOLO11's ``model.4`` output feeds ``model.5``
    and a later Concat). Copies compute the same values, and ORT makes the same copies itself
    before fusing QDQ node units.
    """
    graph = model.graph
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in dict.fromkeys(node.input):
            readers.setdefault(name, []).append(index)
    outputs = {o.name for o in graph.output}
    shared = {
        node.output[0]
        for node in graph.node
        if node.op_type == "DequantizeLinear"
        and len(readers.get(node.output[0], ())) > 1
        and node.output[0] not in outputs
    }
    nodes = []
    for index, node in enumerate(graph.node):
        if node.output and node.output[0] in shared:
            for reader in readers[node.output[0]]:
                nodes.append(_renamed(node, name=f"{node.name}.{reader}", output=f".{reader}"))
            continue
        nodes.append(_renamed(node, inputs={t: f"{t}.{index}" for t in node.input if t in shared}))
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result


def _renamed(
    node: onnx.NodeProto,
    *,
    name: str | None = None,
    output: str = "",
    inputs: Mapping[str, str] | None = None,
) -> onnx.NodeProto:
    """A copy of ``node``, renamed, with ``output`` appended to its first output's name and
    its inputs renamed by ``inputs``."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = name or node.name
    copy.output[0] += output
    copy.input[:] = [(inputs or {}).get(t, t) for t in node.input]
    return copy
