"""The corpus builder and pinned copies, without torch or rapidocr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qsplit.errors import InputError, ModelError
from qsplit.model import analyze, pinned_copy
from qsplit.model.corpus import MODELS, build, corpus_model


def dynamic_opset11_model() -> onnx.ModelProto:
    """Conv → Clip (opset-11 inputs) → GlobalAveragePool with dynamic batch, height, width, the
    way paddle2onnx writes its models."""
    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w"
    )
    low = numpy_helper.from_array(np.array(0.0, np.float32), "low")
    high = numpy_helper.from_array(np.array(6.0, np.float32), "high")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c", "low", "high"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 1, 1])],
        [weight, low, high],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    return model


def test_pinned_copy_fixes_inputs_raises_the_opset_and_computes_the_same(tmp_path: Path) -> None:
    original = tmp_path / "dynamic.onnx"
    onnx.save(dynamic_opset11_model(), original)
    with pytest.raises(ModelError, match="dynamic dimensions"):
        analyze(str(original))
    pinned = pinned_copy(original, tmp_path / "pinned.onnx", {"x": (1, 3, 8, 12)})
    proto = onnx.load(pinned)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [13]
    _, graph = analyze(str(pinned))
    assert graph.model.inputs[0].shape == (1, 3, 8, 12)
    assert graph.model.outputs[0].shape == (1, 4, 1, 1)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 12)).astype(np.float32)
    want = ort.InferenceSession(str(original)).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(pinned)).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, want)


def test_pinned_copy_names_an_unknown_input(tmp_path: Path) -> None:
    original = tmp_path / "dynamic.onnx"
    onnx.save(dynamic_opset11_model(), original)
    with pytest.raises(ModelError, match=r"no input .images.*name one of its inputs: x"):
        pinned_copy(original, tmp_path / "pinned.onnx", {"images": (1, 3, 8, 8)})


def test_build_writes_once_and_reuses(tmp_path: Path) -> None:
    spec = corpus_model("helper-cnn")
    built = build(spec, tmp_path)
    assert built.path == tmp_path / "helper-cnn.onnx" and not built.pinned
    written = built.path.stat().st_mtime_ns
    again = build(spec, tmp_path)
    assert again.sha256 == built.sha256 and again.path.stat().st_mtime_ns == written
    _, graph = analyze(str(built.path))
    assert graph.model.inputs[0].shape == spec.input_shapes["input"]
    outputs = ort.InferenceSession(str(built.path)).run(
        None, {"input": np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)}
    )
    assert 0.01 < float(np.std(outputs[0])) < 100  # alive, not blown up


def test_corpus_has_the_families_and_exporters_issue_14_asks_for() -> None:
    assert len(MODELS) >= 8
    assert len({m.exporter for m in MODELS}) >= 3
    assert {"yolo11n-seg", "yolo11n-pose", "yolo11n-cls", "resnet50", "ppocr-det"} <= {
        m.name for m in MODELS
    }
    with pytest.raises(InputError, match=r"no corpus model .vgg.*use one of"):
        corpus_model("vgg")
