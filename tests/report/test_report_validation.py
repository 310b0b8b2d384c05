"""Prediction errors, gains and placement text on the hand-made run of report_run.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qsplit.report import RunIndex, load_run, validate
from qsplit.report._fig_pareto import non_dominated
from qsplit.report._format import index_ranges, placement
from qsplit.report._summary import error_sentence, gain_sentences
from qsplit.report._validation import error_stats, latency_pair, percent_error

pytest_plugins = ["report_run"]


def test_overall_mape_and_worst_entry(run_dir: Path) -> None:
    validation = validate(RunIndex.load(run_dir))
    assert validation.latency.count == 5  # tt/failed has no measurement
    assert validation.latency.mape_pct == pytest.approx(7.0)
    assert validation.latency.worst_entry == "tt/plan"
    assert validation.latency.worst_error_pct == pytest.approx(-15.0)
    assert validation.latency.meets_target is True
    assert validation.energy.mape_pct == pytest.approx(15.0)
    assert validation.energy.worst_entry == "tt/best-split"
    assert validation.energy.worst_error_pct == pytest.approx(25.0)
    assert validation.energy.meets_target is False


def test_noise_predictions_are_checked_on_quantized_entries(run_dir: Path) -> None:
    run = load_run(run_dir)
    validation = validate(run.index, run.devices)
    assert validation.noise.count == 2  # tt/failed is quantized but was not measured
    assert validation.noise.mape_pct == pytest.approx(22.5)
    assert validation.noise.worst_entry == "local/int8"
    assert validation.noise.worst_error_pct == pytest.approx(25.0)
    assert "meets_target" not in validation.to_dict()["noise"]
    sentence = error_sentence("Quantization noise", validation.noise, run, None)
    assert "22.5 %" in sentence and "target" not in sentence


def test_per_scenario_errors_and_gains(run_dir: Path) -> None:
    run = load_run(run_dir)
    validation = validate(run.index, run.devices)
    local, tiers = validation.scenario("local"), validation.scenario("three-tier")
    assert local.latency.mape_pct == pytest.approx(7.5)
    assert tiers.latency.mape_pct == pytest.approx(20 / 3)
    assert tiers.energy.count == 3

    assert local.best is not None and local.best.entry == "local/int8"
    assert local.best.reference_entry == "local/device-only"
    assert local.best.speedup == pytest.approx(2.0)
    assert local.best.reduction_pct == pytest.approx(50.0)
    assert local.quantization_only == local.best

    assert tiers.best is not None and tiers.best.entry == "tt/plan"
    assert tiers.best.reference_entry == "tt/device-only"
    assert tiers.best.speedup == pytest.approx(5.0)
    assert tiers.best.reduction_pct == pytest.approx(80.0)
    assert tiers.quantization_only is None  # no quantized all-on-device entry there


def test_device_node_comes_from_the_infra_file(run_dir: Path) -> None:
    """With another node as device, nothing runs all on it, so no gain can be computed."""
    index = RunIndex.load(run_dir)
    validation = validate(index, {"three-tier": "edge"})
    assert validation.scenario("three-tier").device == "edge"
    assert validation.scenario("three-tier").best is None
    assert validation.scenario("local").device == "device"  # first node by default


def test_nothing_measured_gives_no_mape() -> None:
    empty = RunIndex({}, "lg.json", {}, None, None, (), ())
    validation = validate(empty)
    assert validation.latency.count == 0
    assert validation.latency.mape_pct is None
    assert validation.latency.meets_target is None


def test_percent_error_is_signed_and_undefined_without_a_measurement() -> None:
    assert percent_error(1.1, 1.0) == pytest.approx(10.0)
    assert percent_error(0.9, 1.0) == pytest.approx(-10.0)
    assert percent_error(1.0, 0.0) is None


def test_non_dominated_points() -> None:
    points = [(3.0, 1.0), (1.0, 3.0), (2.0, 2.0), (2.5, 2.5), (1.0, 3.0), (4.0, 1.0)]
    assert non_dominated(points) == [1, 2, 0]
    assert non_dominated([]) == []


def test_placement_text_lists_index_runs_per_node() -> None:
    order = [f"b{i}" for i in range(8)]
    nodes = ["device"] * 3 + ["edge", "edge", "device", "cloud", "cloud"]
    assert placement(dict(zip(order, nodes, strict=True)), order) == (
        "device 0–2, 5 · edge 3–4 · cloud 6–7"
    )
    assert index_ranges([4]) == "4"


def test_gain_sentences_without_quantization_alone(run_dir: Path) -> None:
    data = json.loads((run_dir / "run.json").read_text())
    data["entries"] = [e for e in data["entries"] if e["id"] != "local/int8"]
    (run_dir / "run.json").write_text(json.dumps(data))
    run = load_run(run_dir)
    sentences = gain_sentences(run, validate(run.index, run.devices))
    assert sentences[0] == (
        "local, fastest measured: local device-only took 1.00 s against 1.00 s for "
        "local device-only: 1.00× (0.0 % less latency)."
    )
    assert sentences[-1].startswith("No measured entry quantizes blocks")
    assert len(sentences) == 3


def test_error_sentence_without_measurements(run_dir: Path) -> None:
    run = load_run(run_dir)
    stats = error_stats([e for e in run.index.entries if e.measured is None], latency_pair)
    assert error_sentence("Latency", stats, run, 10.0) == (
        "Latency: no entry was measured, so the prediction error is unknown."
    )
