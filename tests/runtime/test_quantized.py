"""Quantized blocks deploy in int8: agents reproduce the whole quantized model and links carry
int8 tensors with their scale and zero point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthetic
from agents import infra_for, running_agents
from conftest import random_feeds, session
from qsplit.assets import sample_images_dir
from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.quant import Quantizer, calibrate, image_feeds
from qsplit.runtime import build_deployment, connect

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # ORT's quantization tooling

QUANTIZED = ("stem/conv", "stem/act", "body/m.0/conv", "body/m.1/conv")


def test_quantized_blocks_run_in_int8_and_send_int8(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, graph = analyze(str(path))
    feeds = [random_feeds(model.proto, seed) for seed in range(4)]
    calibration = calibrate(model, feeds)
    whole = session(Quantizer(model, graph, calibration).quantize(QUANTIZED))
    # Both stem blocks on "a": their output r1 is the only tensor crossing to "b", as int8.
    assignment = {b: "a" if b.startswith("stem/") else "b" for b in graph.block_names}
    with running_agents("a", "b") as agents:
        infra = infra_for(agents)
        deployment = build_deployment(
            path, assignment, infra, quantized=QUANTIZED, calibration=calibration
        )
        (first,) = [c for c in deployment.components if c.node == "a"]
        ((tensor, quant),) = first.quant.items()
        assert first.outputs == (tensor,) and quant.scale > 0
        with connect(deployment, infra, graph_optimization="disabled") as s:
            for feed in feeds:
                outputs, record = s.infer_timed(feed)
                for name, want in zip(deployment.model_outputs, whole.run(None, feed), strict=True):
                    np.testing.assert_allclose(outputs[name], want, atol=1e-6, rtol=0)
                (hop,) = [t for t in record.transfers if (t.source, t.target) == ("a", "b")]
                assert hop.bytes == graph.tensor_by_name["r1"].bytes // 4


def test_unknown_quantized_block_is_an_input_error(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    _, graph = analyze(str(path))
    infra = infra_for({})
    assignment = dict.fromkeys(graph.block_names, "device")
    with pytest.raises(InputError, match=r"quantized.*'nope'"):
        build_deployment(path, assignment, infra, quantized=["nope"])


@pytest.mark.slow
def test_yolo11n_quantized_plan_over_three_agents(
    yolo11n_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model, graph = analyze(str(yolo11n_path))
    names = graph.block_names
    quantized = names[2:12]
    nodes = ("device", "edge", "cloud")
    assignment = {b: nodes[0 if i < 6 else 1 if i < 20 else 2] for i, b in enumerate(names)}
    images = image_feeds(model, sample_images_dir())
    whole = session(
        Quantizer(model, graph, calibrate(model, images)).quantize(quantized)
    )  # the same ranges the deployment computes from the same folder
    with running_agents(*nodes) as agents:
        infra = infra_for(agents)
        deployment = build_deployment(yolo11n_path, assignment, infra, quantized=quantized)
        assert len(list((tmp_path / "qsplit" / "calibration").iterdir())) == 1
        sent = {t for c in deployment.components if c.node == "device" for t in c.quant}
        assert sent, "device's last block is quantized: its output must cross as int8"
        edge = next(c for c in deployment.components if c.node == "edge")
        int8_inputs = [edge.reference[t] for t in sent if t in edge.reference]
        assert int8_inputs and all(a.dtype.itemsize == 1 for a in int8_inputs)  # as received
        with connect(deployment, infra, graph_optimization="disabled") as s:
            outputs, record = s.infer_timed(images[0])
    np.testing.assert_allclose(outputs["output0"], whole.run(None, images[0])[0], atol=1e-4)
    (hop,) = [t for t in record.transfers if (t.source, t.target) == ("device", "edge")]
    expected = sum(
        graph.tensor_by_name[t.removesuffix("_QuantizeLinear_Output")].bytes // 4 for t in sent
    )
    assert hop.bytes == expected
