"""The queueing approximation of a shared node, and the latency distribution it implies.

A shared node is a pool of ``c`` identical replicas serving one FIFO queue of *batches*. Requests
for the same component (the same blocks on the node, from any device class) are grouped into
batches of the node's batch size ``b``; a batch of group ``g`` takes ``t_g(b)`` on a replica.

Waiting for a replica follows the **Allen–Cunneen** approximation of the G/G/c queue::

    Wq = C(c, c·ρ) · S̄ / (c·(1 − ρ)) · (ca² + cs²) / 2

with ``C`` the Erlang-C probability of waiting, ``S̄`` the mean batch service time, ``ρ`` the
utilisation, ``cs²`` the squared coefficient of variation of batch service times (0 for one
component: a component's time is deterministic) and ``ca²`` that of batch inter-arrival times:
``1/b``, since a batch closes every ``b``-th arrival of a Poisson stream (Erlang-b gaps).
Why this one (docs/fleet.md): it is exact for M/M/c, within a few percent for M/D/c at the
utilisations the planner allows, handles replicas (M/D/1 would not) and mixed components, and its
mean number waiting is a convex function of ρ alone for fixed variability, which the MILP
linearises by tangents.

The waiting time's distribution is taken as an atom at 0 (probability ``1 − C``) and an
exponential tail of mean ``Wq / C``, the M/M/c shape; a request's latency is its deterministic
part plus the independent waits at its device, at each shared node and for its batch to fill,
whose sum is computed numerically on a grid (:func:`latency_quantiles`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID_POINTS = 1 << 14
"""Points of the grid the latency distribution is convolved on."""


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with ``offered = λ/μ`` erlangs."""
    if offered <= 0:
        return 0.0
    if offered >= servers:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return servers * blocking / (servers - offered * (1 - blocking))


def waiting_requests(rho: float, servers: int, variability: float = 1.0) -> float:
    """Mean number of requests waiting for a replica, at utilisation ``rho``.

    ``variability`` is ``b·(ca² + cs²)`` (1 for one component, whatever the batch size: the
    ``b`` requests of a batch wait together and ``ca² = 1/b``). This is Little's law on the
    Allen–Cunneen wait: a convex, increasing function of ``rho``, infinite from ``rho = 1``.
    """
    if rho <= 0:
        return 0.0
    if rho >= 1:
        return math.inf
    return variability / 2 * erlang_c(servers, servers * rho) * rho / (1 - rho)


def tangents(servers: int, rho_max: float, count: int = 48) -> tuple[tuple[float, float], ...]:
    """``(slope, intercept)`` of tangents to :func:`waiting_requests` on ``[0, rho_max]``.

    Their maximum is a convex piecewise-linear function below the curve and touching it at the
    points, denser towards ``rho_max`` where the curve bends; the MILP's epigraph rows.
    """
    points = [rho_max * (1 - (1 - i / (count - 1)) ** 2) for i in range(count)]
    lines = []
    for rho in points:
        step = 1e-6
        low, high = max(rho - step, 0.0), min(rho + step, rho_max)
        slope = (waiting_requests(high, servers) - waiting_requests(low, servers)) / (high - low)
        lines.append((slope, waiting_requests(rho, servers) - slope * rho))
    return tuple(lines)


@dataclass(frozen=True)
class Wait:
    """A non-negative random delay: 0 with probability ``1 − p_wait``, else exponential."""

    mean_s: float
    p_wait: float

    @property
    def tail_mean_s(self) -> float:
        return self.mean_s / self.p_wait if self.p_wait > 0 else 0.0


@dataclass(frozen=True)
class Forming:
    """The wait for a batch to fill: ``b`` requests of a Poisson stream of ``rate_hz``; a
    request in position ``i`` waits for the ``b − i`` after it (Erlang)."""

    batch: int
    rate_hz: float

    @property
    def mean_s(self) -> float:
        return (self.batch - 1) / (2 * self.rate_hz) if self.batch > 1 else 0.0


def latency_distribution(
    fixed_s: float, waits: Sequence[Wait], formings: Sequence[Forming]
) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, cdf)`` of ``fixed_s`` plus the independent ``waits`` and ``formings``, on a
    grid wide enough for the tails (the last 25 tail means); ``inf`` waits give an empty grid."""
    mean = sum(w.mean_s for w in waits) + sum(f.mean_s for f in formings)
    if math.isinf(mean):
        return np.array([math.inf]), np.array([1.0])
    if mean <= 0:
        return np.array([fixed_s]), np.array([1.0])
    tails = [w.tail_mean_s for w in waits] + [f.batch / f.rate_hz for f in formings if f.batch > 1]
    upper = 1.5 * mean + 25 * max(tails)
    step = upper / GRID_POINTS
    grid = np.arange(GRID_POINTS) * step
    pmfs = [_wait_pmf(w, grid, step) for w in waits if w.mean_s > 0]
    pmfs += [_forming_pmf(f, grid, step) for f in formings if f.batch > 1]
    size = 2 * GRID_POINTS
    spectrum = np.ones(size // 2 + 1, dtype=complex)
    for pmf in pmfs:
        spectrum *= np.fft.rfft(pmf, size)
    cdf = np.cumsum(np.clip(np.fft.irfft(spectrum, size)[:GRID_POINTS], 0, None))
    return fixed_s + grid + step, np.minimum(cdf / max(cdf[-1], 1.0), 1.0)


def quantile(
    distributions: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float], q: float
) -> float:
    """The ``q``-quantile of the mixture of ``distributions`` (from
    :func:`latency_distribution`) with ``weights`` summing to 1."""
    used = [(d, w) for d, w in zip(distributions, weights, strict=True) if w > 0]
    if not used or any(math.isinf(times[-1]) for (times, _), _ in used):
        return math.inf
    points = np.unique(np.concatenate([times for (times, _), _ in used]))
    mixture = sum(
        w * np.interp(points, times, cdf, left=0.0, right=1.0) for (times, cdf), w in used
    )
    return float(points[min(int(np.searchsorted(mixture, q - 1e-12)), len(points) - 1)])


def _wait_pmf(wait: Wait, grid: np.ndarray, step: float) -> np.ndarray:
    tail = wait.tail_mean_s
    cdf = wait.p_wait * -np.expm1(-(grid + step) / tail)
    pmf = np.diff(cdf, prepend=0.0)
    pmf[0] += 1 - wait.p_wait
    return pmf


def _forming_pmf(forming: Forming, grid: np.ndarray, step: float) -> np.ndarray:
    """Mixture over the positions ``i = 1..b`` of Erlang(``b − i``, rate), each of weight 1/b."""
    b, rate = forming.batch, forming.rate_hz
    x = (grid + step) * rate
    cdf = np.full_like(grid, 1.0 / b)  # the last request of a batch does not wait
    term = np.exp(-x)  # P(N(x) = 0) for a Poisson count N with mean x
    survivors = np.zeros_like(grid)
    for k in range(b - 1):  # Erlang(k+1) CDF = 1 - sum_{j<=k} P(N = j)
        survivors += term
        cdf += (1 - survivors) / b
        term = term * x / (k + 1)
    return np.diff(cdf, prepend=0.0)
