"""A fleet configuration's prediction beside a measurement, on synthetic values (no Ray): the
errors, utilisation, failures, the fleet-vs-baseline ratios and the figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from qsplit.fleet import ClassOutcome, Group, NodeLoad, Outcome
from qsplit.report import compare_fleet, plot_fleet, validation_rows, versus
from qsplit.serve import FleetMeasurement, FleetRequest


def outcome(p50: float, p95: float, rho: float = 0.5) -> Outcome:
    classes = tuple(
        ClassOutcome(name, "plan", 0.1, p50, p50, p95, 1.0, 0.5) for name in ("cams", "phones")
    )
    group = Group(("b0",), ("cams", "phones"), 2.0, 0.2, 1.6, 0.03)
    node = NodeLoad("edge", 2, 1, rho, 0.01, 0.2, (group,))
    return Outcome(classes, (node,), p50, p50, p95, 1.0, 2.0, 3.0, rho < 0.8)


def measurement(
    label: str,
    latencies: dict[str, list[float]],
    *,
    failed: int = 0,
    busy_s: float = 10.0,
    completions: int | None = None,
) -> FleetMeasurement:
    """Requests sent at 0, 1, 2… s of a 20 s window; ``completions``: completed within it
    (default: every completed request)."""
    requests = []
    for name, values in latencies.items():
        for i, latency in enumerate(values):
            wait, forming = {"edge": 0.02 * (i % 2)}, {"edge": 0.01}
            requests.append(FleetRequest(name, 0, i, float(i), i + latency, None, wait, forming))
    requests += [FleetRequest("cams", 1, i, 0.0, None, "edge failed", {}) for i in range(failed)]
    return FleetMeasurement(
        label=label,
        duration_s=20.0,
        requests=tuple(requests),
        busy_s={"edge": busy_s},
        replicas={"edge": 2},
        batch_sizes={"edge": {1: 30, 2: 5}},
        overruns={"edge": 1, "cams": 2},
        runs={"edge": 35, "cams": 40},
        completions=sum(map(len, latencies.values())) if completions is None else completions,
    )


def test_a_prediction_is_set_beside_its_measurement() -> None:
    cams = list(np.linspace(0.1, 0.3, 21))
    phones = [0.2] * 19
    result = compare_fleet(
        outcome(0.2, 0.3), measurement("fleet", {"cams": cams, "phones": phones})
    )
    assert result.label == "fleet" and result.sent == 40 and result.failed == 0
    assert result.throughput_hz == pytest.approx(40 / 20)
    assert result.p50_s.measured == pytest.approx(np.quantile(cams + phones, 0.5))
    assert result.p95_s.error == pytest.approx(0.3 / np.quantile(cams + phones, 0.95) - 1)
    by_class = {c.name: c for c in result.classes}
    assert by_class["cams"].sent == 21 and by_class["cams"].p50_s.measured == pytest.approx(0.2)
    assert by_class["phones"].p95_s.error == pytest.approx(0.3 / 0.2 - 1)
    (edge,) = result.nodes
    assert edge.utilisation.measured == pytest.approx(10.0 / (2 * 20.0))
    assert edge.utilisation.predicted == 0.5
    assert edge.wait_s.predicted == 0.01
    assert edge.wait_s.measured == pytest.approx(0.02 * 19 / 40)  # the odd-numbered ones waited
    assert edge.forming_s.predicted == 0.03 and edge.forming_s.measured == pytest.approx(0.01)
    assert edge.batches == {1: 30, 2: 5} and edge.batch_size.measured == pytest.approx(40 / 35)
    assert edge.batch_size.predicted == pytest.approx(1.6)
    assert (edge.overruns, edge.runs) == (1, 35)
    assert result.device_overruns == {"cams": 2}


def test_failed_requests_are_counted_and_left_out_of_latencies() -> None:
    result = compare_fleet(
        outcome(0.2, 0.3), measurement("x", {"cams": [0.2] * 10, "phones": [0.2]}, failed=3)
    )
    assert result.sent == 14 and result.failed == 3
    assert result.throughput_hz == pytest.approx(11 / 20)
    assert result.p95_s.measured == pytest.approx(0.2)


def test_within_tolerance_is_judged_on_both_sides() -> None:
    good = compare_fleet(outcome(0.2, 0.3), measurement("a", {"cams": [0.2], "phones": [0.2]}))
    assert good.p50_s.within() is True
    high = compare_fleet(outcome(0.24, 0.3), measurement("b", {"cams": [0.2], "phones": [0.2]}))
    assert high.p50_s.error == pytest.approx(0.2) and high.p50_s.within() is False
    low = compare_fleet(outcome(0.175, 0.3), measurement("c", {"cams": [0.2], "phones": [0.2]}))
    assert low.p50_s.within() is True and low.p50_s.within(0.1) is False


def test_a_saturated_prediction_is_reported_not_judged() -> None:
    saturated = compare_fleet(
        outcome(math.inf, math.inf, rho=1.4), measurement("alone", {"cams": [5.0], "phones": [5.0]})
    )
    fine = compare_fleet(outcome(0.2, 0.3), measurement("fleet", {"cams": [0.2], "phones": [0.3]}))
    assert saturated.saturated and saturated.p95_s.error is None and saturated.worst_error() is None
    rows = validation_rows([fine, saturated])
    assert {label for label, _, _ in rows} == {"fleet"}
    assert len(rows) == 6  # fleet-wide and two classes, p50 and p95 each
    assert saturated.to_dict()["p95_s"]["predicted"] == math.inf


def test_nothing_measured_gives_no_error() -> None:
    result = compare_fleet(outcome(0.2, 0.3), measurement("x", {"cams": [0.2]}))
    phones = next(c for c in result.classes if c.name == "phones")
    assert phones.completed == 0 and math.isnan(phones.p50_s.measured)
    assert phones.p50_s.error is None and phones.p50_s.within() is None


def test_fleet_against_a_baseline() -> None:
    fleet = compare_fleet(outcome(0.2, 0.3), measurement("fleet", {"cams": [0.2] * 30}))
    blind = compare_fleet(outcome(0.2, 0.3), measurement("alone", {"cams": [0.4] * 15}))
    v = versus(fleet, blind)
    assert v.against == "alone"
    assert v.throughput_ratio == pytest.approx(2.0) and v.p95_ratio == pytest.approx(0.5)
    assert v.meets_goal()
    assert not versus(blind, fleet).meets_goal()
    worse_tail = versus(
        fleet, compare_fleet(outcome(0.2, 0.3), measurement("b", {"cams": [0.1] * 15}))
    )
    assert worse_tail.throughput_ratio == pytest.approx(2.0) and not worse_tail.meets_goal()


def test_figures_are_written(tmp_path: Path) -> None:
    measured = [
        measurement("fleet", {"cams": list(np.linspace(0.1, 0.3, 20)), "phones": [0.2] * 5}),
        measurement("alone", {"cams": [2.0] * 8, "phones": []}, failed=2, busy_s=38.0),
    ]
    results = [
        compare_fleet(outcome(0.2, 0.3), measured[0]),
        compare_fleet(outcome(math.inf, math.inf, rho=1.2), measured[1]),
    ]
    paths = plot_fleet(results, measured, tmp_path)
    assert [p.name for p in paths] == [
        "fleet-throughput-p95.png",
        "fleet-utilisation.png",
        "fleet-latency-cdf.png",
        "fleet-predicted-measured.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_throughput_is_what_completed_within_the_window() -> None:
    # 20 requests each taking 5 s: a saturated node finished 16 of them inside the window
    measured = measurement("alone", {"cams": [5.0] * 20}, completions=16)
    result = compare_fleet(outcome(math.inf, math.inf, rho=1.3), measured)
    assert result.throughput_hz == pytest.approx(16 / 20)
    assert result.drained_hz == pytest.approx(20 / 20)
