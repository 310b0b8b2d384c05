"""Post-training quantization: subsets, the int8 cut, and calibration input errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import synthetic
from conftest import random_feeds, session
from qsplit.assets import sample_images_dir
from qsplit.errors import InputError
from qsplit.model import LayerGraph, LoadedModel, analyze, load_model
from qsplit.partition import ComponentExtractor, components
from qsplit.quant import Calibration, Quantizer, calibrate, image_feeds, quantized_split_view

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _run_split(model: LoadedModel, graph: LayerGraph, assignment, feeds):
    """Run the components of ``assignment`` one after another; all values and link dtypes."""
    values = dict(feeds)
    extractor = ComponentExtractor(model, graph)
    link_dtypes = {}
    for comp in components(graph, assignment):
        sub = extractor.extract(comp)
        outputs = session(sub).run(None, {i: values[i] for i in comp.inputs})
        values.update(zip(comp.outputs, outputs, strict=True))
        link_dtypes.update({t: values[t].dtype for t in comp.inputs if t not in feeds})
    return values, link_dtypes


@pytest.fixture(scope="module")
def branchy(tmp_path_factory) -> tuple[LoadedModel, LayerGraph, Quantizer, list]:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path_factory.mktemp("m") / "b.onnx")
    model, graph = analyze(str(path), granularity="node")
    feeds = [random_feeds(model.proto, seed) for seed in range(4)]
    return model, graph, Quantizer(model, graph, calibrate(model, feeds)), feeds


def test_empty_subset_is_the_float_model(branchy) -> None:
    model, _, quantizer, feeds = branchy
    quantized = quantizer.quantize(set())
    for a, b in zip(
        session(quantized).run(None, feeds[0]),
        session(model.proto).run(None, feeds[0]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_subset_matches_ort_quantizing_that_subset(branchy) -> None:
    """Carving a subset out of the fully quantized model is close to asking ORT for that subset.

    Not bit-exact: ORT places a few edge Q/DQ pairs differently (one element of five moves by a
    quantization step on this model), so the noise each adds to the float model is compared."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    model, graph, quantizer, feeds = branchy
    chosen = set(graph.block_names[::2])
    direct = QDQQuantizer(
        onnx.ModelProto.FromString(model.proto.SerializeToString()),
        True,
        True,  # reduce_range: 7-bit weights, the Quantizer's default with uint8 activations
        QuantType.QInt8,
        QuantType.QUInt8,  # the Quantizer's default activation type
        calibrate(model, feeds).tensors_data(),
        sorted(chosen),
        [],
        sorted(set(QDQRegistry) | set(QLinearOpsRegistry)),
        {"QDQKeepRemovableActivations": True},
    ).quantize_model()
    # Over all feeds: the output has five elements, so one step moves one feed's mean a lot.
    ours, theirs, exact = (
        np.stack([session(m).run(None, f)[0] for f in feeds])
        for m in (quantizer.quantize(chosen), direct, model.proto)
    )
    assert np.abs(ours - theirs).max() < 0.05
    assert np.abs(ours - exact).mean() == pytest.approx(np.abs(theirs - exact).mean(), rel=0.3)


@pytest.mark.parametrize("seed", range(4))
def test_components_reproduce_the_quantized_model(branchy, seed: int) -> None:
    _, graph, quantizer, feeds = branchy
    rng = random.Random(seed)
    chosen = {b for b in graph.block_names if rng.random() < 0.5}
    quantized = quantizer.quantize(chosen)
    whole = session(quantized).run(None, feeds[0])
    qmodel, qgraph = quantized_split_view(quantized, graph, chosen)
    assert qgraph.block_names == graph.block_names
    assignment = {b: rng.choice(["device", "edge", "cloud"]) for b in graph.block_names}
    values, links = _run_split(qmodel, qgraph, assignment, feeds[0])
    for out, expected in zip(qmodel.proto.graph.output, whole, strict=True):
        np.testing.assert_allclose(values[out.name], expected, atol=1e-5)
    _assert_quantized_outputs_cross_as_int8(graph, chosen, links)


def _assert_quantized_outputs_cross_as_int8(
    graph: LayerGraph, chosen: set[str], links, dtype: type = np.uint8
) -> None:
    """A float output of a quantized block never crosses a link: its QuantizeLinear output does,
    in the Quantizer's activation type."""
    for tensor, sent in links.items():
        original = graph.tensor_by_name.get(tensor)
        assert original is None or original.producer not in chosen, f"{tensor} crosses as float"
        assert "DequantizeLinear" not in tensor, f"{tensor} (dequantized) crosses as float"
        if tensor.endswith("_QuantizeLinear_Output"):
            assert sent == dtype


def test_signed_activations_are_a_setting(branchy) -> None:
    model, graph, _, feeds = branchy
    signed = Quantizer(model, graph, calibrate(model, feeds), activation_type="int8")
    assert signed.settings["activations"] == "int8 asymmetric"
    assert signed.settings["weights"] == "int8 symmetric per-channel"
    assert branchy[2].settings["weights"] == "int8 (7-bit range) symmetric per-channel"
    chosen = set(graph.block_names[:4])
    quantized = signed.quantize(chosen)
    qmodel, qgraph = quantized_split_view(quantized, graph, chosen)
    assignment = {b: ("a" if i < 2 else "b") for i, b in enumerate(graph.block_names)}
    _, links = _run_split(qmodel, qgraph, assignment, feeds[0])
    _assert_quantized_outputs_cross_as_int8(graph, chosen, links, np.int8)
    with pytest.raises(InputError, match=r"activation_type.*uint8, int8"):
        Quantizer(model, graph, calibrate(model, feeds), activation_type="int4")  # type: ignore[arg-type]


def test_block_without_quantizable_ops_is_reported(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv"),
        helper.make_node("Neg", ["c"], ["y"], "neg"),
    ]
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 1, 1], [0.5, -1.0])
    proto = helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
            [w],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    path = synthetic.save(proto, tmp_path / "neg.onnx")
    model, graph = analyze(str(path), granularity="node")
    quantizer = Quantizer(model, graph, calibrate(model, [random_feeds(model.proto)]))
    assert quantizer.unquantizable == ("neg",)
    assert quantizer.quantizable == ("conv",)
    session(quantizer.quantize({"conv", "neg"})).run(None, random_feeds(model.proto))


def test_yolo11n_split_carries_int8(yolo11n_path: Path) -> None:
    model, graph = analyze(str(yolo11n_path))
    feeds = image_feeds(model, sample_images_dir(), limit=1)
    quantizer = Quantizer(model, graph, calibrate(model, feeds))
    chosen = {"model.2", "model.3", "model.16"}
    quantized = quantizer.quantize(chosen)
    whole = session(quantized).run(None, feeds[0])[0]
    qmodel, qgraph = quantized_split_view(quantized, graph, chosen)
    names = graph.block_names
    cut = names.index("model.3") + 1
    assignment = {b: "device" if i < cut else "edge" for i, b in enumerate(names)}
    values, links = _run_split(qmodel, qgraph, assignment, feeds[0])
    np.testing.assert_allclose(values["output0"], whole, atol=1e-5)
    assert any(d == np.uint8 for d in links.values())
    _assert_quantized_outputs_cross_as_int8(graph, chosen, links)


def test_yolo11n_shared_int8_output_crosses_as_int8_to_each_reader(yolo11n_path: Path) -> None:
    """``model.4`` feeds ``model.5`` and the Concat in ``model.15``: with the two readers on
    different nodes, each receives the int8 tensor and dequantizes it itself."""
    model, graph = analyze(str(yolo11n_path))
    feeds = image_feeds(model, sample_images_dir(), limit=1)
    quantizer = Quantizer(model, graph, calibrate(model, feeds))
    chosen = {"model.4"}
    quantized = quantizer.quantize(chosen)
    whole = session(quantized).run(None, feeds[0])[0]
    qmodel, qgraph = quantized_split_view(quantized, graph, chosen)
    names = graph.block_names
    assignment = {b: "edge" if b == "model.15" else "device" for b in names}
    values, links = _run_split(qmodel, qgraph, assignment, feeds[0])
    np.testing.assert_allclose(values["output0"], whole, atol=1e-5)
    sent = [t for t in links if t.startswith("/model.4/")]
    assert sent and all(links[t] == np.uint8 for t in sent), links
    _assert_quantized_outputs_cross_as_int8(graph, chosen, links)


def test_calibration_cache_roundtrip(branchy, tmp_path: Path) -> None:
    model, _, _, feeds = branchy
    cache = tmp_path / "calib.json"
    first = calibrate(model, feeds, cache=cache)
    again = calibrate(model, [], cache=cache)
    assert again.ranges == first.ranges
    assert Calibration.load(cache).model_sha256 == model.info.sha256


def test_bad_calibration_folders(yolo11n_path: Path, tmp_path: Path) -> None:
    model = load_model(yolo11n_path)
    with pytest.raises(InputError, match="not found"):
        image_feeds(model, tmp_path / "missing")
    with pytest.raises(InputError, match="no images"):
        image_feeds(model, tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"broken\.jpg.*cannot decode"):
        image_feeds(model, tmp_path)


def test_images_of_any_size_are_letterboxed(yolo11n_path: Path, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("L", (37, 500), 200).save(tmp_path / "tall_grey.png")
    model = load_model(yolo11n_path)
    (feeds,) = image_feeds(model, tmp_path)
    image = feeds["images"]
    assert image.shape == (1, 3, 640, 640) and image.dtype == np.float32
    assert image[0, :, 320, 0] == pytest.approx(114 / 255)


def test_non_image_model_rejects_image_calibration(branchy) -> None:
    model = branchy[0]
    with pytest.raises(InputError, match="--calib"):
        image_feeds(model, sample_images_dir())


def test_an_opset_11_export_quantizes_per_channel(tmp_path: Path) -> None:
    """Exporters still write opset 11 (paddle2onnx); per-channel int8 needs DequantizeLinear's
    ``axis`` (opset 13), so loading raises the opset and the computation stays the same."""
    rng = np.random.default_rng(0)
    weights = [
        helper.make_tensor(
            f"w{i}", TensorProto.FLOAT, (4, c, 3, 3), rng.normal(0, 0.3, (4, c, 3, 3)).ravel()
        )
        for i, c in enumerate((3, 4))
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w1"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "opset11",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 3, 8, 8))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 4, 8, 8))],
        weights,
    )
    original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    path = synthetic.save(original, tmp_path / "opset11.onnx")
    model, graph_ = analyze(str(path), granularity="node")
    assert model.proto.opset_import[0].version == 13
    feeds = [random_feeds(model.proto, seed) for seed in range(2)]
    np.testing.assert_array_equal(
        session(model.proto).run(None, feeds[0])[0], session(original).run(None, feeds[0])[0]
    )
    quantizer = Quantizer(model, graph_, calibrate(model, feeds))
    quantized = quantizer.quantize(quantizer.quantizable)
    assert any(n.op_type == "DequantizeLinear" for n in quantized.graph.node)
    (output,) = session(quantized).run(None, feeds[0])
    assert np.isfinite(output).all()
