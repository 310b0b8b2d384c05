"""Link precision: a tensor that crosses a link sent as fp16 or int8, whatever its producer runs.

The planner may send a block-boundary tensor over the network at a lower precision than it is
computed in, to cut transfer time on slow links. That is model surgery, so that the runtime
needs nothing but the usual split: on each chosen tensor an *encode* node is added in the
producer's block (Cast to float16, or a per-tensor affine QuantizeLinear to uint8 with the
calibration range) and a *decode* node in front of every reader outside that block (Cast back
to float, DequantizeLinear). Readers inside the producer's block keep the exact value. In the
LayerGraph of the result the encoded tensor is the one between blocks, so
:func:`qsplit.partition.components` cuts there and the wire carries 2 or 1 bytes per element.

The same surgery on the whole model gives the values the noise study measures, so the noise the
planner is told about is the noise the runtime produces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, get_args

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qsplit.errors import InputError
from qsplit.model import LayerGraph, LoadedModel
from qsplit.quant._calibration import Calibration
from qsplit.quant._ptq import split_view

LinkPrecision = Literal["fp32", "fp16", "int8"]
LINK_PRECISIONS: tuple[str, ...] = get_args(LinkPrecision)
LOSSY_LINK_PRECISIONS: tuple[str, ...] = ("fp16", "int8")
"""The precisions that change a link's values (and so enter the noise model)."""
LINK_BYTES_PER_ELEMENT: Mapping[str, int] = {"fp32": 4, "fp16": 2, "int8": 1}

_LEVELS = 255  # uint8: the activation type ORT's x86 kernels take natively


def link_tensor_name(tensor: str, precision: str) -> str:
    """Name of the encoded tensor that crosses links in place of ``tensor``."""
    return f"{tensor}_link_{precision}"


def link_candidates(graph: LayerGraph) -> tuple[str, ...]:
    """Tensors whose link precision can be chosen: float32 values a block computes and a block
    elsewhere reads, in graph order. Model outputs are not among them: the requester receives
    those in full precision."""
    return tuple(
        t.name
        for t in graph.tensors
        if t.producer is not None
        and t.dtype == "float32"
        and not t.is_model_output
        and any(c != t.producer for c in t.consumers)
    )


def link_quant_params(calibration: Calibration, tensor: str) -> tuple[float, int]:
    """Scale and uint8 zero point of ``tensor``'s link quantization: its calibration range
    widened to include zero (so zero padding stays exact) over 255 steps."""
    try:
        lo, hi = calibration.ranges[tensor]
    except KeyError:
        raise InputError(
            f"no calibration range for tensor {tensor!r}",
            field="link_precision",
            fix="calibrate the model the plan was made for (same sha256), or keep this link fp32",
        ) from None
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / _LEVELS if hi > lo else 1.0
    zero_point = int(np.clip(round(-lo / scale), 0, _LEVELS))
    return float(np.float32(scale)), zero_point


def link_quantized_model(
    model: LoadedModel,
    graph: LayerGraph,
    link_precision: Mapping[str, str],
    calibration: Calibration,
) -> tuple[LoadedModel, LayerGraph]:
    """``model`` with each tensor of ``link_precision`` sent over links at that precision, and
    a LayerGraph of it with ``graph``'s block names in which the encoded tensor crosses.

    ``model``/``graph`` may be the float model or a view from
    :func:`qsplit.quant.quantized_split_view`; on the latter, a quantized block's output is
    not a candidate (it already crosses as int8). ``fp32`` entries change nothing.
    """
    proto, placed = _encode_links(model.proto, graph, link_precision, calibration)
    return split_view(proto, graph, placed)


def link_quantized_proto(
    proto: onnx.ModelProto,
    graph: LayerGraph,
    link_precision: Mapping[str, str],
    calibration: Calibration,
) -> onnx.ModelProto:
    """``proto`` (``graph``'s model, or its block-quantized version from
    :class:`~qsplit.quant.Quantizer`) with the link encodings, for running it whole.

    Faster than :func:`link_quantized_model` (no LayerGraph), for the noise study. With a
    Quantizer's model, the tensors must not be outputs of its quantized blocks.
    """
    return _encode_links(proto, graph, link_precision, calibration)[0]


def _encode_links(
    proto: onnx.ModelProto,
    graph: LayerGraph,
    link_precision: Mapping[str, str],
    calibration: Calibration,
) -> tuple[onnx.ModelProto, dict[str, str]]:
    """The model with encode/decode nodes, and the block of each encode node."""
    lossy = {t: p for t, p in link_precision.items() if p != "fp32"}
    _check(graph, lossy)
    result = onnx.ModelProto()
    result.CopyFrom(proto)
    nodes = list(result.graph.node)
    placed: dict[str, str] = {}
    for tensor, precision in lossy.items():
        producer = graph.tensor_by_name[tensor].producer
        assert producer is not None  # _check: candidates have a producer
        inside = set(graph.block(producer).onnx_nodes)
        encoded = link_tensor_name(tensor, precision)
        encode, decode_op, extra = _codec_nodes(tensor, precision, encoded, calibration)
        result.graph.initializer.extend(extra)
        placed[encode.name] = producer
        added = [encode]
        for index, node in enumerate(nodes):
            if node.name in inside or tensor not in node.input:
                continue
            decoded = f"{encoded}_decoded.{index}"
            added.append(decode_op(f"{encode.name}/decode.{index}", decoded))
            node.input[:] = [decoded if i == tensor else i for i in node.input]
        position = next(i for i, n in enumerate(nodes) if tensor in n.output) + 1
        nodes[position:position] = added
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result, placed


def _codec_nodes(
    tensor: str, precision: str, encoded: str, calibration: Calibration
) -> tuple[onnx.NodeProto, Callable[[str, str], onnx.NodeProto], list[onnx.TensorProto]]:
    """The encode node, a factory of decode nodes (name, output), and initializers they read."""
    name = f"{tensor}/link_{precision}"
    if precision == "fp16":
        encode = helper.make_node(
            "Cast", [tensor], [encoded], f"{name}/encode", to=TensorProto.FLOAT16
        )

        def decode(node_name: str, output: str) -> onnx.NodeProto:
            return helper.make_node("Cast", [encoded], [output], node_name, to=TensorProto.FLOAT)

        return encode, decode, []
    scale, zero_point = link_quant_params(calibration, tensor)
    params = [
        numpy_helper.from_array(np.array(scale, np.float32), f"{name}/scale"),
        numpy_helper.from_array(np.array(zero_point, np.uint8), f"{name}/zero_point"),
    ]
    inputs = [p.name for p in params]
    encode = helper.make_node("QuantizeLinear", [tensor, *inputs], [encoded], f"{name}/encode")

    def dequantize(node_name: str, output: str) -> onnx.NodeProto:
        return helper.make_node("DequantizeLinear", [encoded, *inputs], [output], node_name)

    return encode, dequantize, params


def _check(graph: LayerGraph, lossy: Mapping[str, str]) -> None:
    """Every problem with the requested link precisions, in one error."""
    candidates = set(link_candidates(graph))
    problems = [
        f"{t!r}: precision {p!r} is not one of {', '.join(LINK_PRECISIONS)}"
        for t, p in lossy.items()
        if p not in LINK_PRECISIONS
    ] + [
        f"{t!r} is not a float32 tensor between two blocks of this graph (nor a model output)"
        for t in lossy
        if t not in candidates
    ]
    if problems:
        raise InputError(
            f"{len(problems)} link precision(s) cannot be applied: " + "; ".join(problems),
            field="link_precision",
            fix="choose float tensors from qsplit.quant.link_candidates(graph) (a quantized "
            "block's output already crosses as int8) and one of fp32, fp16, int8",
        )
