"""The live estimator on its own: link fits, smoothing and change detection on known samples."""

from __future__ import annotations

import random
import time

import pytest

from qsplit.infra import Link
from qsplit.runtime import Awaited, ComponentRun, Observer, RequestRecord, Transfer


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


def test_an_awaited_transfer_bounds_its_link_until_it_is_answered() -> None:
    nominal = Link("device", "edge", 5e6, 0.005)
    observer = Observer([nominal])
    now = time.time()
    # 1 MB sent 0.2 s ago with 0.5 s of slack: no bound yet (it may still be on time).
    observer.awaiting("early", Awaited("device", "edge", 1_000_000, now - 0.2, 0.5))
    assert observer.snapshot().link("device", "edge") is None
    # Sent 2.5 s ago: the link has carried 1 MB in more than 2 s, so at most 0.5 MB/s.
    observer.awaiting("late", Awaited("device", "edge", 1_000_000, now - 2.5, 0.5))
    bounded = observer.snapshot().link("device", "edge")
    assert bounded is not None and bounded.bounded and bounded.samples == 0
    assert bounded.bandwidth_bytes_per_s <= 0.5e6
    assert bounded.latency_s == nominal.latency_s
    observer.answered("late")
    observer.answered("early")
    assert observer.snapshot().link("device", "edge") is None


def test_a_bound_above_the_observed_bandwidth_changes_nothing() -> None:
    observer = Observer()
    _feed(observer, ("device", "edge"), [100_000] * 5, 0.0, 1e5)  # 0.1 MB/s observed
    observer.awaiting("r", Awaited("device", "edge", 1_000_000, time.time() - 2.0, 0.0))
    estimate = observer.snapshot().link("device", "edge")
    assert estimate is not None and not estimate.bounded
    assert estimate.bandwidth_bytes_per_s == pytest.approx(1e5, rel=0.01)


# Reverse-link transfers (128 KiB at 40 MB/s, 2 ms latency: ~6 ms) as a testbed at load 8
# timed them: a slow first one, then scheduling delays of 10-50 ms now and then.
LOADED_HOST_S = [0.184, 0.0076, 0.0074, 0.0078, 0.0061, 0.0061, 0.0061, 0.0172, 0.0149, 0.0061,
                 0.0361, 0.0068, 0.0065, 0.0063, 0.0062, 0.0065]  # fmt: skip


def test_a_loaded_hosts_late_messages_are_no_change() -> None:
    observer = Observer([Link("e", "d", 40e6, 0.002)])
    for seconds in LOADED_HOST_S:
        observer.add(_record(("e", "d", 131_072, seconds)), {})
    estimate = observer.snapshot().link("e", "d")
    assert estimate is not None and estimate.last_change is None
    # The slow first transfer did not set the level: ~4 ms of transfer, not 180.
    assert estimate.bandwidth_bytes_per_s == pytest.approx(131_072 / 0.0045, rel=0.3)


def test_one_sample_however_late_is_no_change_and_three_are() -> None:
    observer = Observer([Link("d", "e", 20e6, 0.005)])
    _feed(observer, ("d", "e"), [1_000_000] * 10, 0.005, 20e6)
    _feed(observer, ("d", "e"), [1_000_000], 0.005, 20e3)  # one transfer 1000x slower
    assert observer.snapshot().link("d", "e").last_change is None
    _feed(observer, ("d", "e"), [1_000_000] * 6, 0.005, 20e6)  # the sums drain, 0.25 a sample
    _feed(observer, ("d", "e"), [1_000_000] * 2, 0.005, 2e6)
    assert observer.snapshot().link("d", "e").last_change is None
    _feed(observer, ("d", "e"), [1_000_000], 0.005, 2e6)
    after = observer.snapshot().link("d", "e")
    assert after.last_change is not None
    assert after.bandwidth_bytes_per_s == pytest.approx(2e6, rel=0.01)
