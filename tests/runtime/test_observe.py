"""The live estimator on its own: link fits, smoothing and change detection on known samples."""

from __future__ import annotations

import random

import pytest

from qsplit.infra import Link
from qsplit.runtime import ComponentRun, Observer, RequestRecord, Transfer


def _record(*transfers: tuple[str, str, int, float], runs: tuple = ()) -> RequestRecord:
    return RequestRecord(
        request="r",
        latency_s=1.0,
        runs=tuple(ComponentRun(*r) for r in runs),
        transfers=tuple(Transfer(*t) for t in transfers),
    )


def _feed(observer: Observer, link: tuple[str, str], sizes, latency_s, bandwidth, jitter=0.0):
    rng = random.Random(1)
    for size in sizes:
        seconds = (latency_s + size / bandwidth) * (1 + rng.uniform(-jitter, jitter))
        observer.add(_record((*link, size, seconds)), {})


def test_varied_sizes_fit_latency_and_bandwidth_apart() -> None:
    observer = Observer()
    _feed(observer, ("d", "e"), [10_000, 200_000, 50_000, 400_000] * 4, 0.02, 5e6)
    estimate = observer.snapshot().link("d", "e")
    assert estimate is not None and estimate.samples == 16
    assert estimate.latency_s == pytest.approx(0.02, rel=0.01)
    assert estimate.bandwidth_bytes_per_s == pytest.approx(5e6, rel=0.05)


def test_one_size_keeps_the_nominal_latency_and_finds_the_bandwidth() -> None:
    observer = Observer([Link("d", "e", 20e6, 0.005)])
    _feed(observer, ("d", "e"), [1_000_000] * 10, 0.005, 2e6, jitter=0.1)
    estimate = observer.snapshot().link("d", "e")
    assert estimate is not None
    assert estimate.latency_s == 0.005
    assert estimate.bandwidth_bytes_per_s == pytest.approx(2e6, rel=0.1)
    assert estimate.last_change is None  # 10 % jitter is no change


def test_a_step_is_detected_once_and_the_estimate_jumps_to_the_new_level() -> None:
    observer = Observer([Link("d", "e", 20e6, 0.005)])
    _feed(observer, ("d", "e"), [1_000_000] * 20, 0.005, 20e6, jitter=0.1)
    assert observer.snapshot().link("d", "e").last_change is None
    _feed(observer, ("d", "e"), [1_000_000] * 3, 0.005, 2e6, jitter=0.1)
    after = observer.snapshot().link("d", "e")
    assert after.last_change is not None
    assert after.bandwidth_bytes_per_s == pytest.approx(2e6, rel=0.15)
    changed = after.last_change
    _feed(observer, ("d", "e"), [1_000_000] * 20, 0.005, 2e6, jitter=0.1)
    assert observer.snapshot().link("d", "e").last_change == changed  # one step, one change


def test_node_speed_is_observed_over_profiled_time() -> None:
    observer = Observer()
    runs = (("c0", "edge", 0.3), ("c1", "edge", 0.1), ("c2", "cloud", 0.05))
    for _ in range(5):
        observer.add(_record(runs=runs), {"c0": 0.1, "c1": 0.1, "c2": None})
    observed = observer.snapshot()
    assert observed.node("edge").speed_factor == pytest.approx(2.0)
    assert observed.node("cloud") is None  # no profiled time, no factor
    assert observed.to_dict()["nodes"][0] == {
        "node": "edge",
        "speed_factor": pytest.approx(2.0),
        "samples": 5,
        "last_change": None,
        "updated": observed.nodes[0].updated,
    }


def test_transfers_within_a_node_and_empty_ones_are_left_out() -> None:
    observer = Observer()
    observer.add(_record(("d", "d", 100, 0.1), ("d", "e", 0, 0.1)), {})
    assert observer.snapshot().links == ()
