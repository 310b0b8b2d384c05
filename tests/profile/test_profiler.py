"""Compute profiling on a small synthetic model: coverage, padding factor, files, additivity."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.profile import (
    ComputeProfile,
    block_feeds,
    emulated_duration_s,
    measure_additivity,
    pad_to,
    profile_compute,
    random_components,
)
from qsplit.quant import Quantizer, calibrate


@pytest.fixture(scope="module")
def branchy(tmp_path_factory: pytest.TempPathFactory):
    import synthetic

    path = tmp_path_factory.mktemp("models") / "branchy.onnx"
    synthetic.save(synthetic.branchy_cnn(), path)
    return analyze(str(path))


@pytest.fixture(scope="module")
def profile(branchy) -> ComputeProfile:
    model, graph = branchy
    return profile_compute(model, graph, node="edge", warmup=1, repetitions=5)


def test_profile_covers_every_block_with_spreads(branchy, profile: ComputeProfile) -> None:
    _, graph = branchy
    assert set(profile.blocks) == set(graph.block_names)
    assert profile.model_sha256 == graph.model.sha256
    for timing in profile.blocks.values():
        assert timing.fp32_s > 0 and timing.fp32_spread_s >= 0
    assert profile.settings["threads"] == 1 and profile.settings["spinning"] is False


def test_int8_times_are_those_of_the_quantizer_model(branchy, profile: ComputeProfile) -> None:
    model, graph = branchy
    # Not an image model: calibrated on the random input the blocks are timed on.
    feeds = [{s.name: block_feeds(model, graph)[s.name] for s in model.info.inputs}]
    quantizer = Quantizer(model, graph, calibrate(model, feeds))
    timed = {n for n, t in profile.blocks.items() if t.int8_s is not None}
    assert timed == set(quantizer.quantizable) and timed
    weighted = {b.name for b in graph.blocks if {"Conv", "Gemm", "MatMul"} & set(b.op_types)}
    assert weighted <= timed
    assert profile.settings["int8"] == {**quantizer.settings, "calibration_inputs": "random input"}
    assert profile.settings["int8"]["activations"] == "uint8 asymmetric"


def test_activation_type_is_a_setting(branchy) -> None:
    model, graph = branchy
    profile = profile_compute(
        model, graph, node="n", warmup=0, repetitions=1, activation_type="int8"
    )
    assert profile.settings["int8"]["activations"] == "int8 asymmetric"
    assert any(t.int8_s is not None for t in profile.blocks.values())
    with pytest.raises(InputError, match="activation_type"):
        profile_compute(model, graph, node="n", activation_type="int4")  # type: ignore[arg-type]


def test_progress_is_reported_per_block(branchy) -> None:
    model, graph = branchy
    seen: list[tuple[int, int, str]] = []
    profile_compute(
        model,
        graph,
        node="n",
        warmup=0,
        repetitions=1,
        int8=False,
        progress=lambda done, total, name: seen.append((done, total, name)),
    )
    assert [s[2] for s in seen] == list(graph.block_names)
    assert seen[-1][:2] == (len(graph.blocks), len(graph.blocks))


def test_padding_factor_scales_reported_times(branchy) -> None:
    model, graph = branchy
    slow = profile_compute(
        model, graph, node="d", padding_factor=1000.0, warmup=1, repetitions=3, int8=False
    )
    fast = profile_compute(model, graph, node="d", warmup=1, repetitions=3, int8=False)
    ratio = sum(t.fp32_s for t in slow.blocks.values()) / sum(
        t.fp32_s for t in fast.blocks.values()
    )
    assert 300 < ratio < 3000  # 1000× up to run-to-run noise of the unscaled timings
    assert slow.settings["padding_factor"] == 1000.0


def test_padding_factor_below_one_is_refused(branchy) -> None:
    model, graph = branchy
    with pytest.raises(InputError):
        profile_compute(model, graph, node="d", padding_factor=0.5)


def test_pad_to_sleeps_to_the_emulated_duration() -> None:
    start = time.perf_counter()
    assert emulated_duration_s(0.01, 3.0) == pytest.approx(0.03)
    assert pad_to(start, 0.01, 3.0) == pytest.approx(0.03)
    assert time.perf_counter() - start >= 0.03


def test_json_round_trip(profile: ComputeProfile, tmp_path: Path) -> None:
    path = tmp_path / "edge.json"
    profile.save(str(path))
    assert ComputeProfile.load(str(path)) == profile


def test_additivity_on_synthetic_model(branchy) -> None:
    model, graph = branchy
    sets = random_components(graph, 6, seed=3)
    assert len(set(sets)) == 6 and all(len(s) >= 2 for s in sets)
    report = measure_additivity(model, graph, sets, block_feeds(model, graph), repetitions=5)
    summary = report.to_dict()
    # Blocks of a few µs: the fixed cost of one session.run (~10 µs) is counted once per block in
    # the raw sum but once per component in reality. The fitted overhead removes that bias.
    assert 0 < report.overhead_s < 1e-3
    assert summary["mean_signed_error_raw"] > 0
    assert summary["corrected"]["median_abs_error"] < summary["raw"]["median_abs_error"]
    assert len(report.samples) == 6


def test_cli_emulates_the_infra_node_by_its_reference_time(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import synthetic
    from qsplit.cli import app

    model = tmp_path / "branchy.onnx"
    synthetic.save(synthetic.branchy_cnn(), model)
    infra = tmp_path / "infra.yaml"
    infra.write_text(
        "schema_version: 1\ndevice: d\nnodes:\n"
        "  - {name: d, role: device, compute_power_w: 1, transmit_power_w: 1,"
        " memory_bytes: 1GiB, reference_time: 60s}\nlinks: []\n"
    )
    out = tmp_path / "d.json"
    args = ["profile", str(model), "--node", "d", "--infra", str(infra), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--repetitions", "2", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    profile = ComputeProfile.load(str(out))
    # 60 s for YOLO11n is far slower than any host: the factor is 60 s over this host's time.
    factor = profile.settings["padding_factor"]
    assert profile.node == "d" and 60 < factor < 6000
    assert f"padding factor {factor:.2f}" in result.output
    assert "whole model measured" in result.output


def test_cli_calibrates_int8_on_the_given_images(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qsplit.cli import app
    from quant.tiny_model import tiny_classifier

    model = tiny_classifier(tmp_path)
    out = tmp_path / "p.json"
    args = [
        "profile",
        str(model),
        "--node",
        "n",
        "--out",
        str(out),
        "--calib",
        str(tmp_path / "images"),
    ]
    result = CliRunner().invoke(app, [*args, "--repetitions", "1", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    settings = ComputeProfile.load(str(out)).settings["int8"]
    assert settings["calibration_inputs"] == str(tmp_path / "images")
    assert settings["activations"] == "uint8 asymmetric"


def test_cli_writes_codec_times_and_the_compression_table(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import synthetic
    from qsplit.cli import app
    from qsplit.profile import CODEC_OPERATIONS, CompressionTable
    from qsplit.quant import link_candidates

    model = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    out, table = tmp_path / "p.json", tmp_path / "compression.json"
    args = ["profile", str(model), "--node", "n", "--out", str(out), "--compression", str(table)]
    result = CliRunner().invoke(app, [*args, "--repetitions", "1", "--warmup", "0", "--no-int8"])
    assert result.exit_code == 0, result.output
    codec = ComputeProfile.load(str(out)).codec
    assert codec is not None and all(codec.supports(op) for op in CODEC_OPERATIONS)
    assert "link codecs at 4 MiB" in result.output
    ratios = CompressionTable.load(table)
    graph = analyze(str(model))[1]
    assert ratios.model_sha256 == graph.model.sha256
    assert {(t, p) for t, p, _ in ratios.ratios} == {
        (t, p) for t in link_candidates(graph) for p in ("fp32", "fp16", "int8")
    }
    assert ratios.settings["calibration_inputs"] == "random input"
    result = CliRunner().invoke(app, [*args[:6], "--no-codec", "--repetitions", "1", "--no-int8"])
    assert result.exit_code == 0, result.output
    assert ComputeProfile.load(str(out)).codec is None
