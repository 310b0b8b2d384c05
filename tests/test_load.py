"""Loading: every kind of bad model input ends in a ModelError naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import synthetic
from conftest import session
from qsplit.errors import ModelError
from qsplit.model import load_model, parse_input_shape


def test_static_model_loads_with_concrete_shapes(model_dir: Path) -> None:
    model = load_model(model_dir / "branchy.onnx")
    assert [s.name for s in model.info.inputs] == ["x", "y"]
    assert model.values["cat"].shape == (1, 8, 16, 16)
    assert model.values["fc"].bytes == 5 * 4
    assert len(model.info.sha256) == 64


def test_anonymous_nodes_get_unique_names(model_dir: Path) -> None:
    model = load_model(model_dir / "branchy_anon.onnx")
    names = [n.name for n in model.proto.graph.node]
    assert all(names) and len(set(names)) == len(names)


def test_dynamic_input_needs_a_shape(model_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"attention_dyn.onnx.*dynamic.*--input-shape x=1x6x8"):
        load_model(model_dir / "attention_dyn.onnx")


def test_dynamic_input_with_shape(model_dir: Path) -> None:
    model = load_model(model_dir / "attention_dyn.onnx", {"x": (3, 6, 8)})
    assert model.values["y"].shape == (3, 6, 8)
    assert model.values["qk"].shape == (3, 6, 6)
    assert model.info.input_shapes == (("x", (3, 6, 8)),)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ({"x": (1, 5, 8)}, r"dimension 1 is fixed to 6.*use 6"),
        ({"x": (1, 6)}, r"rank 3.*rank 2"),
        ({"nope": (1, 6, 8)}, r"no input 'nope'.*name one of its inputs: x"),
    ],
)
def test_shape_that_does_not_match(model_dir: Path, shape: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_model(model_dir / "attention_dyn.onnx", shape)


def test_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 20)
    with pytest.raises(ModelError, match=r"notes.onnx: not an ONNX model"):
        load_model(path)


def test_truncated(model_dir: Path, tmp_path: Path) -> None:
    data = (model_dir / "branchy.onnx").read_bytes()
    for cut in (len(data) // 3, len(data) - 7):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=r"truncated|invalid ONNX"):
            load_model(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="file not found"):
        load_model(tmp_path / "absent.onnx")


def test_old_opset_is_refused(tmp_path: Path) -> None:
    model = synthetic.attention()
    model.opset_import[0].version = 9
    model.graph.node.pop()  # drop the node whose schema differs before opset 11
    model.graph.node[-1].output[0] = "y"
    path = tmp_path / "old.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError, match="opset 9 is older than 11"):
        load_model(path)


def test_data_dependent_shapes_are_measured(tmp_path: Path) -> None:
    """NonZero's output size depends on the data; one run on zeros measures it."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], "relu"),
        helper.make_node("NonZero", ["r"], ["nz"], "nonzero"),
        helper.make_node("Cast", ["nz"], ["y"], "cast", to=onnx.TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "nz",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["rank", "count"])],
    )
    path = tmp_path / "nz.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    loaded = load_model(path)
    assert loaded.values["nz"].shape == (2, 0)


@pytest.mark.parametrize("text", ["images", "images=", "=1x3", "images=1x-3", "images=axb"])
def test_bad_input_shape_text(text: str) -> None:
    with pytest.raises(ModelError, match="--input-shape"):
        parse_input_shape(text)


def test_input_shape_text() -> None:
    assert parse_input_shape("images=1x3x640x640") == ("images", (1, 3, 640, 640))


def test_scalar_constants_become_initializers(tmp_path: Path) -> None:
    """``value_float`` and ``value_ints`` constants are lifted with their value and type."""
    nodes = [
        helper.make_node("Constant", [], ["k"], "k", value_float=2.5),
        helper.make_node("Constant", [], ["shape"], "shape", value_ints=[1, 12]),
        helper.make_node("Mul", ["x", "k"], ["y"], "mul"),
        helper.make_node("Reshape", ["y", "shape"], ["out"], "reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "scalars",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 12])],
    )
    path = tmp_path / "s.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    model = load_model(path)
    assert [n.op_type for n in model.proto.graph.node] == ["Mul", "Reshape"]
    lifted = {t.name: numpy_helper.to_array(t) for t in model.proto.graph.initializer}
    assert lifted["k"].dtype == np.float32 and float(lifted["k"]) == 2.5
    assert lifted["shape"].dtype == np.int64 and lifted["shape"].tolist() == [1, 12]
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    (out,) = session(model.proto).run(["out"], {"x": x})
    np.testing.assert_array_equal(out, (x * 2.5).reshape(1, 12))


def test_batch_stored_as_minus_one_is_dynamic(tmp_path: Path) -> None:
    """Exporters that write a dynamic batch as -1: the error suggests a usable shape, and
    --input-shape with any batch size fixes it."""
    model = synthetic.attention()
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = -1
    path = synthetic.save(model, tmp_path / "minus1.onnx")
    with pytest.raises(ModelError, match=r"dynamic dimensions \(\?x6x8\).*x=1x6x8"):
        load_model(path)
    assert load_model(path, {"x": (2, 6, 8)}).values["y"].shape == (2, 6, 8)


def test_symbolic_dimensions_are_named_in_the_suggested_shape(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], "relu")],
        "image",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    )
    path = tmp_path / "image.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(ModelError, match=r"\(Nx3xHxW\).*--input-shape x=1x3xHxW with the sizes"):
        load_model(path)


def test_constant_chains_fold_into_initializers(tmp_path: Path) -> None:
    """Nodes computed from weights alone (a Constant cast to a Reshape's shape, a Constant
    unsqueezed, the Shape of a weight) become initializers; only layers with real input stay
    nodes, and the model computes the same."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    shape = numpy_helper.from_array(np.array([1.0, 12.0], np.float32))
    nodes = [
        helper.make_node("Constant", [], ["shape_f"], "shape_f", value=shape),
        helper.make_node("Cast", ["shape_f"], ["shape"], "/chain/Cast", to=TensorProto.INT64),
        helper.make_node("Constant", [], ["k"], "k", value_float=2.5),
        helper.make_node("Constant", [], ["axes"], "axes", value_ints=[0]),
        helper.make_node("Unsqueeze", ["k", "axes"], ["k1"], "/chain/Unsqueeze"),
        helper.make_node("Shape", ["w"], ["w_shape"], "/chain/Shape"),
        helper.make_node("Reshape", ["w", "w_shape"], ["w2"], "/chain/Reshape"),
        helper.make_node("Mul", ["x", "k1"], ["y"], "/layer/Mul"),
        helper.make_node("Add", ["y", "w2"], ["z"], "/layer/Add"),
        helper.make_node("Reshape", ["z", "shape"], ["out"], "/layer/Reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "chains",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 12])],
        [numpy_helper.from_array(w, "w")],
    )
    original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = synthetic.save(original, tmp_path / "chains.onnx")
    model = load_model(path)
    assert [n.name for n in model.proto.graph.node] == [
        "/layer/Mul",
        "/layer/Add",
        "/layer/Reshape",
    ]
    weights = {t.name: numpy_helper.to_array(t) for t in model.proto.graph.initializer}
    assert set(weights) == {"shape", "k1", "w2"}  # what the remaining nodes read, nothing else
    assert weights["shape"].dtype == np.int64 and weights["shape"].tolist() == [1, 12]
    x = np.random.default_rng(0).standard_normal((1, 3, 4)).astype(np.float32)
    (want,) = session(original).run(["out"], {"x": x})
    (got,) = session(model.proto).run(["out"], {"x": x})
    np.testing.assert_array_equal(got, want)


def test_what_constant_folding_leaves_as_nodes(tmp_path: Path) -> None:
    """Dequantized int8 weights (ORT fuses them into int8 kernels), a few bytes expanded into
    megabytes (cheaper computed than stored), random ops and model outputs stay nodes."""
    q = numpy_helper.from_array(np.arange(12, dtype=np.int8).reshape(1, 3, 4), "q")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    big = numpy_helper.from_array(np.array([1, 1024, 1024], np.int64), "big")
    nodes = [
        helper.make_node("DequantizeLinear", ["q", "scale"], ["wq"], "/w/DequantizeLinear"),
        helper.make_node("ConstantOfShape", ["big"], ["zeros"], "/w/ConstantOfShape"),
        helper.make_node("RandomNormal", [], ["noise"], "/w/RandomNormal", shape=[1, 3, 4]),
        helper.make_node("Identity", ["scale"], ["scale_out"], "/w/Identity"),
        helper.make_node("Add", ["x", "wq"], ["a"], "/layer/Add"),
        helper.make_node("Add", ["a", "noise"], ["b"], "/layer/Noise"),
        helper.make_node("ReduceSum", ["zeros"], ["s"], "/layer/ReduceSum", keepdims=0),
        helper.make_node("Add", ["b", "s"], ["out"], "/layer/Out"),
    ]
    graph = helper.make_graph(
        nodes,
        "kept",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [
            helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 4]),
            helper.make_tensor_value_info("scale_out", TensorProto.FLOAT, []),
        ],
        [q, scale, big],
    )
    original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = load_model(synthetic.save(original, tmp_path / "kept.onnx"))
    assert [n.name for n in model.proto.graph.node] == [n.name for n in nodes]
