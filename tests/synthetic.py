"""Small ONNX models built with onnx.helper, covering the graph shapes splitting must handle:
skip connections, several inputs and outputs, Gemm/MatMul, Concat/Split, attention-style MatMul
pairs, and module-prefixed as well as anonymous node names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _init(rng: np.random.Generator, name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)


def branchy_cnn(named: bool = True, seed: int = 0) -> onnx.ModelProto:
    """Two inputs, two outputs; conv trunk, Split into two branches, Concat, skip Add, Gemm and a
    MatMul on the second input joined at the end."""
    rng = np.random.default_rng(seed)
    p = (lambda module, op: f"/{module}/{op}") if named else (lambda module, op: "")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], p("stem", "conv/Conv"), pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"], p("stem", "act/Relu")),
        helper.make_node("Split", ["r1", "split"], ["s0", "s1"], p("body", "Split"), axis=1),
        helper.make_node("Conv", ["s0", "w2"], ["c2"], p("body", "m.0/conv/Conv"), pads=[1] * 4),
        helper.make_node("Sigmoid", ["c2"], ["g2"], p("body", "m.0/act/Sigmoid")),
        helper.make_node("Mul", ["c2", "g2"], ["a2"], p("body", "m.0/act/Mul")),
        helper.make_node("Conv", ["s1", "w3"], ["c3"], p("body", "m.1/conv/Conv"), pads=[1] * 4),
        helper.make_node("Concat", ["a2", "c3"], ["cat"], p("body", "Concat"), axis=1),
        helper.make_node("Add", ["cat", "r1"], ["skip"], p("neck", "Add")),
        helper.make_node(
            "MaxPool",
            ["skip"],
            ["mp"],
            p("neck", "pool/MaxPool"),
            kernel_shape=[2, 2],
            strides=[2, 2],
        ),
        helper.make_node("GlobalAveragePool", ["mp"], ["gap"], p("head", "GlobalAveragePool")),
        helper.make_node("Flatten", ["gap"], ["flat"], p("head", "Flatten")),
        helper.make_node("Gemm", ["flat", "wg", "bg"], ["fc"], p("head", "fc/Gemm"), transB=1),
        helper.make_node("MatMul", ["y", "wy"], ["ym"], p("side", "MatMul")),
        helper.make_node("Add", ["fc", "ym"], ["out"], p("head", "Add")),
    ]
    graph = helper.make_graph(
        nodes,
        "branchy_cnn",
        inputs=[
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6]),
        ],
        outputs=[
            helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5]),
            helper.make_tensor_value_info("skip", TensorProto.FLOAT, [1, 8, 16, 16]),
        ],
        initializer=[
            _init(rng, "w1", 8, 3, 3, 3),
            _init(rng, "b1", 8),
            numpy_helper.from_array(np.array([4, 4], dtype=np.int64), "split"),
            _init(rng, "w2", 4, 4, 3, 3),
            _init(rng, "w3", 4, 4, 3, 3),
            _init(rng, "wg", 5, 8),
            _init(rng, "bg", 5),
            _init(rng, "wy", 6, 5),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def attention(seed: int = 1, dynamic_batch: bool = False) -> onnx.ModelProto:
    """A single-head self-attention layer with a residual: Q·Kᵀ and A·V are MatMul pairs of two
    activations."""
    rng = np.random.default_rng(seed)
    d = 8
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], "/attn/q/MatMul"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], "/attn/k/MatMul"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], "/attn/v/MatMul"),
        helper.make_node("Transpose", ["k"], ["kt"], "/attn/Transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"], "/attn/qk/MatMul"),
        helper.make_node("Softmax", ["qk"], ["p"], "/attn/Softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["av"], "/attn/av/MatMul"),
        helper.make_node("Add", ["av", "x"], ["res"], "/out/Add"),
        helper.make_node("Relu", ["res"], ["y"], "/out/Relu"),
    ]
    batch: int | str = "batch" if dynamic_batch else 1
    graph = helper.make_graph(
        nodes,
        "attention",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 6, d])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 6, d])],
        initializer=[_init(rng, n, d, d) for n in ("wq", "wk", "wv")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def random_dag(seed: int, n_nodes: int = 24) -> onnx.ModelProto:
    """A random DAG of elementwise ops on one shape: every node reads one or two earlier values,
    so skip connections of every length appear; several values are outputs."""
    rng = np.random.default_rng(seed)
    shape = [1, 4, 5]
    values = ["in0", "in1"]
    nodes = []
    unary = ["Relu", "Sigmoid", "Neg", "Abs", "Tanh"]
    binary = ["Add", "Mul", "Sub", "Max"]
    for i in range(n_nodes):
        out = f"v{i}"
        if rng.random() < 0.5:
            a = values[int(rng.integers(len(values)))]
            nodes.append(
                helper.make_node(
                    unary[int(rng.integers(len(unary)))], [a], [out], f"/m{i // 4}/op{i}"
                )
            )
        else:
            a, b = rng.choice(len(values), size=2, replace=len(values) < 2)
            nodes.append(
                helper.make_node(
                    binary[int(rng.integers(len(binary)))],
                    [values[a], values[b]],
                    [out],
                    f"/m{i // 4}/op{i}",
                )
            )
        values.append(out)
    read = {i for n in nodes for i in n.input}
    outputs = [v for v in values[2:] if v not in read] or [values[-1]]
    if values[-1] not in outputs:
        outputs.append(values[-1])
    outputs.append(values[2 + n_nodes // 2])  # an output that is also read inside
    graph = helper.make_graph(
        nodes,
        f"random_dag_{seed}",
        inputs=[helper.make_tensor_value_info(v, TensorProto.FLOAT, shape) for v in values[:2]],
        outputs=[
            helper.make_tensor_value_info(v, TensorProto.FLOAT, shape)
            for v in dict.fromkeys(outputs)
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def relay(shape: tuple[int, ...]) -> onnx.ModelProto:
    """``x → /a/Relu → y → /b/Neg → out``: two blocks, so split over two nodes exactly ``y``
    (as large as the input) crosses between them and ``out`` (as large) returns."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, list(shape))
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], "/a/Relu"),
        helper.make_node("Neg", ["y"], ["out"], "/b/Neg"),
    ]
    graph = helper.make_graph(nodes, "relay", [x], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def with_constant_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its initializers stored as ``Constant`` nodes, as exporters other than
    PyTorch's write weights: tensors in ``value``, 1-element floats and int vectors in the
    ``value_float`` and ``value_ints`` forms."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    constants = []
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32 and array.size == 1 and array.ndim == 0:
            attrs = {"value_float": float(array)}
        elif array.dtype == np.int64 and array.ndim == 1:
            attrs = {"value_ints": [int(v) for v in array]}
        else:
            attrs = {"value": tensor}
        constants.append(
            helper.make_node("Constant", [], [tensor.name], f"/const/{tensor.name}", **attrs)
        )
    del graph.initializer[:]
    nodes = [*constants, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    return result


def failing_gather() -> onnx.ModelProto:
    """``out = data[int(16 x)]`` over a 1-element ``data``: loads fine, but ORT raises at run
    time on almost any input (an index out of bounds), as on the random inputs of deploy-time
    timing or of ``qsplit run --random`` (a third-party model failing inside ORT)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [16])
    data = numpy_helper.from_array(np.ones(1, np.float32), "data")
    sixteen = numpy_helper.from_array(np.array(16, np.float32), "sixteen")
    nodes = [
        helper.make_node("Mul", ["x", "sixteen"], ["scaled"], "/index/Mul"),
        helper.make_node("Cast", ["scaled"], ["idx"], "/index/Cast", to=TensorProto.INT64),
        helper.make_node("Gather", ["data", "idx"], ["out"], "/gather/Gather"),
    ]
    graph = helper.make_graph(nodes, "failing_gather", [x], [out], [data, sixteen])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def computed_resize(size: int = 16) -> onnx.ModelProto:
    """An image model whose Resize scales are computed by another block from the input's shape:
    ``/scales/…`` makes ``scales`` = [1, 1, 32/H, 32/W] (2 for the default size) and ``/up/Resize``
    reads it. Split between nodes, the Resize component receives ``scales`` from the other one,
    so random values for it (negative scales) make ORT raise."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 2 * size, 2 * size])
    initializers = [
        numpy_helper.from_array(np.array([2], np.int64), "two"),
        numpy_helper.from_array(np.array([4], np.int64), "four"),
        numpy_helper.from_array(np.array([2.0 * size, 2.0 * size], np.float32), "target"),
        numpy_helper.from_array(np.ones(2, np.float32), "ones"),
    ]
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], "/scales/Shape"),
        helper.make_node("Slice", ["shape", "two", "four"], ["hw"], "/scales/Slice"),
        helper.make_node("Cast", ["hw"], ["hw_f"], "/scales/Cast", to=TensorProto.FLOAT),
        helper.make_node("Div", ["target", "hw_f"], ["factor"], "/scales/Div"),
        helper.make_node("Concat", ["ones", "factor"], ["scales"], "/scales/Concat", axis=0),
        helper.make_node("Relu", ["x"], ["r"], "/stem/Relu"),
        helper.make_node("Resize", ["r", "", "scales"], ["out"], "/up/Resize", mode="nearest"),
    ]
    graph = helper.make_graph(nodes, "computed_resize", [x], [out], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
