"""Link precision surgery: encoded tensors cross links, splits reproduce the whole model, and the
int8/fp16 round trips stay within their rounding."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import synthetic
from conftest import random_feeds, session
from qsplit.errors import InputError
from qsplit.model import LayerGraph, LoadedModel, analyze, merge_blocks
from qsplit.partition import ComponentExtractor, components
from qsplit.quant import (
    Quantizer,
    calibrate,
    link_candidates,
    link_quant_params,
    link_quantized_model,
    link_quantized_proto,
    link_tensor_name,
    quantized_split_view,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def branchy(tmp_path_factory):
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path_factory.mktemp("m") / "b.onnx")
    model, graph = analyze(str(path), granularity="node")
    feeds = [random_feeds(model.proto, seed) for seed in range(4)]
    return model, graph, calibrate(model, feeds), feeds


def _run_split(model: LoadedModel, graph: LayerGraph, assignment, feeds):
    """Run the components one after another; all values, and the dtype of each link tensor."""
    values = dict(feeds)
    extractor = ComponentExtractor(model, graph)
    sent = {}
    for comp in components(graph, assignment):
        outputs = session(extractor.extract(comp)).run(None, {i: values[i] for i in comp.inputs})
        values.update(zip(comp.outputs, outputs, strict=True))
        sent.update({t: values[t].dtype for t in comp.inputs if t not in feeds})
    return values, sent


def _random_choice(graph: LayerGraph, rng: random.Random, exclude=()) -> dict[str, str]:
    return {
        t: rng.choice(["fp32", "fp16", "int8"])
        for t in link_candidates(graph)
        if graph.tensor_by_name[t].producer not in exclude
    }


@pytest.mark.parametrize("seed", range(3))
def test_split_reproduces_the_whole_link_quantized_model(branchy, seed: int) -> None:
    model, graph, calibration, feeds = branchy
    rng = random.Random(seed)
    choice = _random_choice(graph, rng)
    lmodel, lgraph = link_quantized_model(model, graph, choice, calibration)
    assert lgraph.block_names == graph.block_names
    whole = session(lmodel.proto).run(None, feeds[0])
    assignment = {b: rng.choice(["device", "edge", "cloud"]) for b in graph.block_names}
    values, sent = _run_split(lmodel, lgraph, assignment, feeds[0])
    for out, expected in zip(lmodel.proto.graph.output, whole, strict=True):
        np.testing.assert_array_equal(values[out.name], expected)
    _assert_encoded_on_links(graph, choice, sent)
    fast = link_quantized_proto(model.proto, graph, choice, calibration)
    np.testing.assert_array_equal(session(fast).run(None, feeds[0])[0], whole[0])


def _assert_encoded_on_links(graph: LayerGraph, choice, sent) -> None:
    """A link-quantized tensor crosses only encoded, in its precision's element type."""
    dtypes = {"fp16": np.float16, "int8": np.uint8}
    crossed = 0
    for tensor, precision in choice.items():
        if precision == "fp32":
            continue
        assert tensor not in sent, f"{tensor} crosses as float"
        encoded = link_tensor_name(tensor, precision)
        if encoded in sent:
            crossed += 1
            assert sent[encoded] == dtypes[precision]
    assert all(  # an original tensor crosses only if sent as computed (or not a candidate)
        choice.get(t, "fp32") == "fp32"
        for t in sent
        if t in graph.tensor_by_name and graph.tensor_by_name[t].producer is not None
    )
    assert crossed or all(p == "fp32" for p in choice.values()) or not sent


def _with_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    result = onnx.ModelProto()
    result.CopyFrom(proto)
    result.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    return result


def test_round_trips_stay_within_their_rounding(branchy) -> None:
    model, graph, calibration, feeds = branchy
    candidates = link_candidates(graph)
    assert len(candidates) >= 4
    int8, fp16 = candidates[0::2], candidates[1::2]
    choice = {t: "int8" for t in int8} | {t: "fp16" for t in fp16}
    proto = link_quantized_proto(model.proto, graph, choice, calibration)
    decoded = {}
    for node in proto.graph.node:
        if "/decode." in node.name:
            decoded.setdefault(node.input[0], node.output[0])
    for feed in feeds:
        names = [*choice, *(decoded[link_tensor_name(t, p)] for t, p in choice.items())]
        results = session(_with_outputs(proto, names)).run(names, feed)
        exact, back = results[: len(choice)], results[len(choice) :]
        for (tensor, precision), x, y in zip(choice.items(), exact, back, strict=True):
            if precision == "fp16":
                np.testing.assert_array_equal(y, x.astype(np.float16).astype(np.float32))
            else:
                # Upstream link rounding can push a value past its calibrated range: clipped.
                scale, zero = link_quant_params(calibration, tensor)
                inside = np.clip(x, -zero * scale, (255 - zero) * scale)
                assert np.abs(y - inside).max() <= scale / 2 * (1 + 1e-5), tensor


def test_readers_inside_the_producer_keep_the_exact_value(branchy) -> None:
    """At block granularity a tensor may be read both inside and outside its producer's
    block: only the outside readers get the decoded value."""
    model, graph, calibration, feeds = branchy
    groups = [list(graph.block_names[:3]), list(graph.block_names[3:])]
    coarse = merge_blocks(graph, groups, ["front", "back"])
    choice = {t: "int8" for t in link_candidates(coarse)}
    assert choice
    lmodel, lgraph = link_quantized_model(model, coarse, choice, calibration)
    inside = set(coarse.block("front").onnx_nodes)
    for node in lmodel.proto.graph.node:
        if node.name in inside:
            assert not any("_link_" in i for i in node.input), node.name
    whole = session(lmodel.proto).run(None, feeds[1])
    values, sent = _run_split(lmodel, lgraph, {"front": "a", "back": "b"}, feeds[1])
    np.testing.assert_array_equal(values[lmodel.proto.graph.output[0].name], whole[0])
    assert set(sent) == {link_tensor_name(t, "int8") for t in choice}


@pytest.mark.parametrize("seed", range(2))
def test_composes_with_quantized_blocks(branchy, seed: int) -> None:
    model, graph, calibration, feeds = branchy
    rng = random.Random(seed)
    quantizer = Quantizer(model, graph, calibration)
    chosen = {b for b in graph.block_names if rng.random() < 0.5}
    quantized = quantizer.quantize(chosen)
    qmodel, qgraph = quantized_split_view(quantized, graph, chosen)
    choice = _random_choice(graph, rng, exclude=chosen)
    assert set(choice) <= set(link_candidates(qgraph))
    lmodel, lgraph = link_quantized_model(qmodel, qgraph, choice, calibration)
    whole = session(lmodel.proto).run(None, feeds[0])
    fast = link_quantized_proto(quantized, graph, choice, calibration)
    np.testing.assert_allclose(session(fast).run(None, feeds[0])[0], whole[0], atol=1e-6)
    assignment = {b: rng.choice(["device", "edge"]) for b in graph.block_names}
    values, sent = _run_split(lmodel, lgraph, assignment, feeds[0])
    np.testing.assert_array_equal(values[lmodel.proto.graph.output[0].name], whole[0])
    for tensor in sent:  # nothing float crosses from a quantized or link-quantized producer
        original = graph.tensor_by_name.get(tensor)
        assert original is None or (
            original.producer not in chosen and choice.get(tensor, "fp32") == "fp32"
        )


def test_fp32_changes_nothing(branchy) -> None:
    model, graph, calibration, _ = branchy
    choice = {t: "fp32" for t in link_candidates(graph)}
    lmodel, lgraph = link_quantized_model(model, graph, choice, calibration)
    assert [n.name for n in lmodel.proto.graph.node] == [n.name for n in model.proto.graph.node]
    assert lgraph.tensors == graph.tensors


def test_bad_requests_are_listed_in_one_error(branchy) -> None:
    model, graph, calibration, _ = branchy
    quantizer = Quantizer(model, graph, calibration)
    block = graph.block_names[1]
    qmodel, qgraph = quantized_split_view(quantizer.quantize({block}), graph, {block})
    (output,) = graph.block(block).outputs
    first = link_candidates(graph)[0]
    with pytest.raises(InputError) as info:
        link_quantized_model(
            qmodel, qgraph, {output: "int8", "nope": "fp16", first: "int4"}, calibration
        )
    message = str(info.value)
    assert "3 link precision(s)" in message
    assert repr(output) in message and "'nope'" in message and "'int4'" in message


def test_yolo11n_int8_link_crosses_as_one_byte(yolo11n_path: Path) -> None:
    from qsplit.assets import sample_images_dir
    from qsplit.quant import image_feeds

    model, graph = analyze(str(yolo11n_path))
    feeds = image_feeds(model, sample_images_dir(), limit=1)
    calibration = calibrate(model, feeds)
    names = graph.block_names
    cut = names.index("model.4") + 1
    assignment = {b: "device" if i < cut else "edge" for i, b in enumerate(names)}
    crossing = [
        t for t in link_candidates(graph) if graph.tensor_by_name[t].producer in names[:cut]
    ]
    choice = {t: ("int8" if i % 2 == 0 else "fp16") for i, t in enumerate(crossing)}
    lmodel, lgraph = link_quantized_model(model, graph, choice, calibration)
    whole = session(lmodel.proto).run(None, feeds[0])[0]
    values, sent = _run_split(lmodel, lgraph, assignment, feeds[0])
    np.testing.assert_array_equal(values["output0"], whole)
    linked = {t: d for t, d in sent.items() if "_link_" in t}
    assert linked and all(d in (np.uint8, np.float16) for d in linked.values())
    exact = session(model.proto).run(None, feeds[0])[0]
    assert np.abs(whole - exact).max() < 0.05 * np.abs(exact).max()
