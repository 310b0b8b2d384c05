"""Arrivals through the tiers: QNA's variability formulas, the spaced renewal window and batch
filling behind a 1-replica node, against closed forms and a direct sampling of the process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qsplit.fleet._arrivals import (
    Stream,
    batch_sizes,
    departure_scv,
    departures,
    holding,
    merged_scv,
    split_scv,
    window_rate,
)
from qsplit.fleet._queueing import Forming


def test_departure_scv_limits() -> None:
    # light load: the departures are the arrivals
    assert departure_scv(0.3, 0.0, 0.0, 1) == pytest.approx(0.3)
    assert departure_scv(2.5, 0.0, 1e-6, 4) == pytest.approx(2.5, rel=1e-6)
    # one deterministic server near saturation: departures a service time apart
    assert departure_scv(1.0, 0.0, 1.0, 1) == pytest.approx(0.0)
    # M/M/c: Poisson in, Poisson out (Burke), at any load
    for rho in (0.2, 0.7, 0.95):
        assert departure_scv(1.0, 1.0, rho, 3) == pytest.approx(1.0)
    # M/D/1 departures: 1 − ρ² (the exact gap: S, plus Exp(λ) when the server empties)
    assert departure_scv(1.0, 0.0, 0.6, 1) == pytest.approx(1 - 0.36)
    # c servers share the service times' regularity: √c weaker
    assert departure_scv(1.0, 0.0, 1.0, 4) == pytest.approx(1 - 1 / 2)


def test_split_and_merge() -> None:
    assert split_scv(0.2, 1.0) == pytest.approx(0.2)
    assert split_scv(0.2, 1e-9) == pytest.approx(1.0)
    assert split_scv(0.0, 0.5) == pytest.approx(0.5)
    streams = [Stream(1.0, 0.2), Stream(3.0, 1.0)]
    assert merged_scv(streams) == pytest.approx((0.2 + 3.0) / 4)


def test_departures_in_groups() -> None:
    """A class alone in full batches of 4 leaves in groups of 4: the request stream's index of
    dispersion is 4× the batches' variability; a class sharing batches leaves in
    Binomial(K, share) groups (given one)."""
    full = np.array([0.0, 0.0, 0.0, 1.0])
    alone = departures(2.0, 1.0, full, 0.25)
    assert alone.group_pmf == pytest.approx((0.0, 0.0, 0.0, 1.0))
    assert alone.scv == pytest.approx(4 * 0.25)
    shared = departures(1.0, 0.5, full, 0.25)
    assert holding(0.5, full) == pytest.approx(1 - 0.5**4)
    binomial = [math.comb(4, n) * 0.5**4 / (1 - 0.5**4) for n in range(1, 5)]
    assert shared.group_pmf == pytest.approx(binomial)
    assert departures(1.0, 1.0, np.array([1.0]), 0.7).scv == pytest.approx(0.7)


def _md1_departures(rate: float, service: float) -> Stream:
    """The departures of one deterministic server fed Poisson: gaps ``S``, plus ``Exp(λ)``
    when the server empties (probability ``1 − ρ``)."""
    return Stream(rate, 1 - (rate * service) ** 2, service, rate * service)


def test_time_out_shorter_than_the_spacing_gives_batches_of_one() -> None:
    """Departures of a 1-replica node are at least its batch time apart: a batch behind it
    whose time-out is shorter never takes a second request, and its opener waits the whole
    time-out alone — where Poisson arrivals at the same rate would fill some."""
    stream = _md1_departures(rate=0.72, service=0.21)
    sizes = batch_sizes([stream], 4, 0.05)
    assert sizes == pytest.approx([1.0, 0.0, 0.0, 0.0])
    assert window_rate([stream], 4, 0.05) == pytest.approx(0.0, abs=1e-12)
    forming = Forming(4, 0.0, 0.05, per_item_s=0.6)
    assert forming.mean_size == 1.0
    assert forming.wait_s == pytest.approx(0.05, rel=1e-3)  # the grid's half step
    assert forming.mean_s == pytest.approx(0.05, rel=1e-3)
    assert Forming(4, 0.72, 0.05).mean_size > 1.03  # what Poisson arrivals predicted


def test_spaced_window_against_sampling() -> None:
    """The chance of ``j`` more requests within the window, from one of them and from a random
    moment, against the renewal process sampled directly (gaps ``S + Y``)."""
    rate, service, window = 20.0, 0.03, 0.1
    stream = _md1_departures(rate, service)
    rng = np.random.default_rng(3)
    count = 400_000
    idle = rng.random(count) >= rate * service
    times = np.cumsum(service + np.where(idle, rng.exponential(1 / rate, count), 0.0))
    starts = times[: count // 2]
    after = np.searchsorted(times, starts + window, side="right") - np.arange(1, starts.size + 1)
    origins = rng.uniform(0, starts[-1], 100_000)
    seen = np.searchsorted(times, origins + window, side="right") - np.searchsorted(times, origins)
    for j, (ordinary, stationary) in enumerate(
        zip(
            stream.groups_within(window, 3, after_arrival=True),
            stream.groups_within(window, 3, after_arrival=False),
            strict=True,
        ),
        start=1,
    ):
        assert ordinary == pytest.approx(np.mean(after >= j), abs=0.005), j
        assert stationary == pytest.approx(np.mean(seen >= j), abs=0.005), j


def test_poisson_streams_keep_the_poisson_window() -> None:
    """Without spacing the window is Poisson's: counts, sizes and the window rate."""
    lam, window = 10.0, 0.05
    stream = Stream(lam)
    mu = lam * window
    poisson = [math.exp(-mu) * mu**n / math.factorial(n) for n in range(3)]
    counts = stream.requests_within(window, 3, after_arrival=False)
    assert counts == pytest.approx([*poisson, 1 - sum(poisson)])
    sizes = batch_sizes([stream, Stream(5.0)], 4, window)
    assert float(np.arange(1, 5) @ sizes) == pytest.approx(Forming(4, 15.0, window).mean_size)
    assert window_rate([stream, Stream(5.0, 0.5)], 4, window) == 15.0
    assert window_rate([_md1_departures(20.0, 0.03)], 4, math.inf) == 20.0


def test_close_variability_carries_the_arrivals() -> None:
    """At batch 1 a batcher's closes are its arrivals; full batches of a renewal stream of
    variability c² close with c²/b; Poisson arrivals keep the Erlang gap."""
    assert Forming(1, 5.0).close_scv(0.3) == pytest.approx(0.3)
    assert Forming(4, 5.0).close_scv(1.0) == pytest.approx(0.25, rel=1e-3)
    assert Forming(4, 5.0).close_scv(0.2) == pytest.approx(0.2 / 4, rel=1e-2)
    # M/D/1 at batch 1: a close within S + W follows with probability 1 − e^{−λ(S + W)}
    assert Forming(1, 2.0).close_within(2.0, 0.3) == pytest.approx(1 - math.exp(-0.6))
