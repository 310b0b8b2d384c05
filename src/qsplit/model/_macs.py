"""Multiply–accumulate counts per ONNX node, from concrete tensor shapes.

MACs are a size measure for reports and a sanity check on profiles, not a latency model, so the
rules are the usual ones: convolutions and matrix products count their multiply–accumulates,
pooling counts one per window element, elementwise and normalisation ops one per output element,
and pure data movement (reshape, concat, slice…) counts zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import onnx

Shapes = Mapping[str, tuple[int, ...]]

DATA_MOVEMENT = frozenset(
    {
        "Concat",
        "Split",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Slice",
        "Gather",
        "GatherElements",
        "GatherND",
        "Identity",
        "Shape",
        "Size",
        "Constant",
        "ConstantOfShape",
        "Expand",
        "Tile",
        "Pad",
        "Cast",
        "Range",
        "DepthToSpace",
        "SpaceToDepth",
        "QuantizeLinear",
        "DequantizeLinear",
        "Dropout",
    }
)


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _conv(node: onnx.NodeProto, shapes: Shapes, weights: Shapes) -> int:
    w = weights.get(node.input[1]) or shapes.get(node.input[1])
    out = shapes.get(node.output[0])
    if w is None or out is None:
        return 0
    # W is (C_out, C_in/group, k...): each output element needs C_in/group · Π k MACs.
    return _numel(out) * _numel(w[1:])


def _conv_transpose(node: onnx.NodeProto, shapes: Shapes, weights: Shapes) -> int:
    w = weights.get(node.input[1]) or shapes.get(node.input[1])
    x = shapes.get(node.input[0])
    if w is None or x is None:
        return 0
    # W is (C_in, C_out/group, k...): each input element scatters into C_out/group · Π k outputs.
    return _numel(x) * _numel(w[1:])


def _matmul(node: onnx.NodeProto, shapes: Shapes, weights: Shapes) -> int:
    a = weights.get(node.input[0]) or shapes.get(node.input[0])
    out = shapes.get(node.output[0])
    if a is None or out is None:
        return 0
    return _numel(out) * a[-1]


def _gemm(node: onnx.NodeProto, shapes: Shapes, weights: Shapes) -> int:
    a = weights.get(node.input[0]) or shapes.get(node.input[0])
    out = shapes.get(node.output[0])
    if a is None or out is None:
        return 0
    k = a[0] if _attr(node, "transA", 0) else a[-1]
    return _numel(out) * k


def _pool(node: onnx.NodeProto, shapes: Shapes, weights: Shapes) -> int:
    out = shapes.get(node.output[0])
    kernel = _attr(node, "kernel_shape", [])
    return _numel(out) * _numel(tuple(kernel)) if out else 0  # type: ignore[arg-type]


def _global_pool(node: onnx.NodeProto, shapes: Shapes, weights: Shapes) -> int:
    x = shapes.get(node.input[0])
    return _numel(x) if x else 0


_RULES: dict[str, Callable[[onnx.NodeProto, Shapes, Shapes], int]] = {
    "Conv": _conv,
    "ConvInteger": _conv,
    "ConvTranspose": _conv_transpose,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "Gemm": _gemm,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "LpPool": _pool,
    "GlobalAveragePool": _global_pool,
    "GlobalMaxPool": _global_pool,
}


def node_macs(node: onnx.NodeProto, shapes: Shapes, weights: Shapes) -> int:
    """MACs of one node; ``shapes`` has activations, ``weights`` the initializers' shapes."""
    if node.op_type in DATA_MOVEMENT:
        return 0
    rule = _RULES.get(node.op_type)
    if rule is not None:
        return rule(node, shapes, weights)
    return sum(_numel(shapes[o]) for o in node.output if o in shapes)
