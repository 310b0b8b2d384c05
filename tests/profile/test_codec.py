"""Codec times are measured per operation and scale with the node; compression ratios are those
of the reference run's values as each link precision encodes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthetic
from qsplit._codecs import CODECS, compress
from qsplit.model import analyze
from qsplit.profile import (
    CODEC_OPERATIONS,
    measure_codec_times,
    measure_compression,
    reference_values,
)
from qsplit.quant import Calibration, calibrate, link_candidates, link_quant_params

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MIB = 2**20


def test_every_codec_operation_is_measured_both_ways() -> None:
    times = measure_codec_times(repetitions=2)
    assert all(times.supports(op) for op in CODEC_OPERATIONS)
    for costs in (times.encode, times.decode):
        for cost in costs.values():
            assert cost.fixed_s >= 0 and cost.per_byte_s >= 0
    # Compressing 4 MiB takes longer than 16 KiB, whatever the load.
    assert times.encode["zstd"].seconds(4 * MIB) > times.encode["zstd"].seconds(16 * 1024)


def test_an_emulated_node_scales_its_codec_times_by_its_padding_factor() -> None:
    here = measure_codec_times(repetitions=2)
    slow = measure_codec_times(repetitions=2, padding_factor=1000.0)
    for op in CODEC_OPERATIONS:
        assert slow.encode[op].seconds(4 * MIB) > 20 * here.encode[op].seconds(4 * MIB)


@pytest.fixture(scope="module")
def branchy(tmp_path_factory):
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path_factory.mktemp("m") / "b.onnx")
    model, graph = analyze(str(path))
    rng = np.random.default_rng(0)
    feeds = [
        {i.name: rng.standard_normal(i.shape).astype(np.float32) for i in model.info.inputs}
        for _ in range(2)
    ]
    return model, graph, calibrate(model, feeds), reference_values(model, graph, feeds[0])


def test_ratios_are_those_of_the_encoded_reference_values(branchy) -> None:
    _, graph, calibration, values = branchy
    table = measure_compression(graph, values, calibration)
    assert table.model_sha256 == graph.model.sha256
    candidates = link_candidates(graph)
    assert {t for t, _, _ in table.ratios} == set(candidates)
    for tensor in candidates:
        for codec in CODECS:
            fp16 = values[tensor].astype(np.float16).tobytes()
            assert table.ratio(tensor, "fp16", codec) == len(compress(codec, fp16)) / len(fp16)
            assert table.ratio(tensor, "fp32", codec) is not None
            assert table.ratio(tensor, "int8", codec) is not None
        assert table.ratio(tensor, "int8", "none") == 1.0
    # r1 is a ReLU output: int8 with zero point at 0 has runs of zero bytes, and compresses.
    scale, zero_point = link_quant_params(calibration, "r1")
    assert zero_point == 0 and scale > 0
    assert table.ratio("r1", "int8", "zstd") < 1.0


def test_without_calibration_there_are_no_int8_ratios(branchy) -> None:
    _, graph, _, values = branchy
    table = measure_compression(graph, values)
    assert table.ratios and {p for _, p, _ in table.ratios} == {"fp32", "fp16"}
    partial = Calibration(graph.model.sha256, {"r1": (0.0, 4.0)})
    table = measure_compression(graph, values, partial)
    assert {t for t, p, _ in table.ratios if p == "int8"} == {"r1"}


def test_a_table_survives_its_file(branchy, tmp_path: Path) -> None:
    from qsplit.profile import CompressionTable

    _, graph, calibration, values = branchy
    table = measure_compression(graph, values, calibration, tensors=["r1"])
    table.save(tmp_path / "c.json")
    assert CompressionTable.load(tmp_path / "c.json") == table
