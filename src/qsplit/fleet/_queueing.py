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
part plus the independent waits at its device (M/D/1, exactly: :class:`DeviceWait`), at each
shared node and for its batch to fill, whose sum is computed numerically on a grid
(:func:`latency_distribution`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID_POINTS = 1 << 14
"""Points of the grid the latency distribution is convolved on."""
SATURATED = 1 - 1e-9
"""Utilisation from which a queue has no steady state: a fleet scaled to exactly the count
that fills a node computes ρ = 1 within float round-off, and must read as saturated."""


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
    if rho >= SATURATED:
        return math.inf
    return variability / 2 * erlang_c(servers, servers * rho) * rho / (1 - rho)


def tangents(servers: int, rho_max: float, count: int = 64) -> tuple[tuple[float, float], ...]:
    """``(slope, intercept)`` of tangents to :func:`waiting_requests` on ``[0, rho_max]``.

    Their maximum is a convex piecewise-linear function below the curve and touching it at the
    points: half spread evenly, half denser towards ``rho_max`` where the curve bends; the
    MILP's epigraph rows.
    """
    half = count // 2
    even = [rho_max * i / (half - 1) for i in range(half)]
    dense = [rho_max * (1 - (1 - i / (half - 1)) ** 2) for i in range(half)]
    points = sorted(set(even + dense))
    lines = []
    for rho in points:
        step = 1e-6
        low, high = max(rho - step, 0.0), min(rho + step, rho_max)
        slope = (waiting_requests(high, servers) - waiting_requests(low, servers)) / (high - low)
        lines.append((slope, waiting_requests(rho, servers) - slope * rho))
    return tuple(lines)


@dataclass(frozen=True)
class Wait:
    """A non-negative random delay: 0 with probability ``1 − p_wait``, else exponential (the
    M/M/c shape, used for a shared node's replicas)."""

    mean_s: float
    p_wait: float

    @property
    def tail_s(self) -> float:
        """Mean of the exponential part: the scale of the tail."""
        return self.mean_s / self.p_wait if self.p_wait > 0 else 0.0

    def pmf(self, grid: np.ndarray, step: float) -> np.ndarray:
        cdf = self.p_wait * -np.expm1(-(grid + step) / self.tail_s)
        pmf = np.diff(cdf, prepend=0.0)
        pmf[0] += 1 - self.p_wait
        return pmf


@dataclass(frozen=True)
class DeviceWait:
    """The wait of an M/D/1 queue, exactly: a device serving its own Poisson requests, each
    taking ``service_s`` (its part of the plan).

    Its distribution is far from exponential (at ρ = 0.2 the p95 of a device's latency came out
    13 % short of the simulated one with an exponential tail), so Erlang's formula is used::

        P(W ≤ t) = (1 − ρ) Σ_{k=0}^{⌊t/D⌋} (λ(kD − t))^k / k! · e^{−λ(kD − t)}

    up to ``EXACT_SPAN`` services (beyond, the alternating sum loses precision), then its
    exponential asymptote ``e^{−θt}`` with ``λ(e^{θD} − 1) = θ``.
    """

    rate_hz: float
    service_s: float

    EXACT_SPAN = 8

    @property
    def rho(self) -> float:
        return self.rate_hz * self.service_s

    @property
    def p_wait(self) -> float:
        return min(self.rho, 1.0)

    @property
    def mean_s(self) -> float:
        if self.rho >= SATURATED:
            return math.inf
        return self.rho * self.service_s / (2 * (1 - self.rho))

    @property
    def tail_s(self) -> float:
        return 1 / self._decay() if 0 < self.rho < 1 else 0.0

    def _decay(self) -> float:
        lam, d = self.rate_hz, self.service_s
        low, high = 1e-12, 1.0 / d
        while lam * math.expm1(high * d) - high < 0:
            high *= 2
        for _ in range(100):
            mid = (low + high) / 2
            if lam * math.expm1(mid * d) - mid < 0:
                low = mid
            else:
                high = mid
        return (low + high) / 2

    def cdf(self, t: np.ndarray) -> np.ndarray:
        limit = self.EXACT_SPAN * self.service_s
        edge = float(self._erlang(np.array([limit]))[0])
        tail = 1 - (1 - edge) * np.exp(-(t - limit) / self.tail_s)
        return np.where(t <= limit, self._erlang(np.minimum(t, limit)), tail)

    def _erlang(self, t: np.ndarray) -> np.ndarray:
        lam, d = self.rate_hz, self.service_s
        total = np.zeros_like(t)
        for k in range(self.EXACT_SPAN + 1):
            x = lam * (k * d - t)
            total += np.where(k * d <= t, x**k / math.factorial(k) * np.exp(-x), 0.0)
        return np.clip((1 - self.rho) * total, 0.0, 1.0)

    def pmf(self, grid: np.ndarray, step: float) -> np.ndarray:
        return np.diff(self.cdf(grid + step), prepend=0.0)


@dataclass(frozen=True)
class Forming:
    """The wait for a batch to fill: ``b`` requests of a Poisson stream of ``rate_hz``; a
    request in position ``i`` waits for the ``b − i`` after it (Erlang)."""

    batch: int
    rate_hz: float

    @property
    def mean_s(self) -> float:
        return (self.batch - 1) / (2 * self.rate_hz) if self.batch > 1 else 0.0

    @property
    def tail_s(self) -> float:
        return self.batch / self.rate_hz if self.batch > 1 else 0.0

    def pmf(self, grid: np.ndarray, step: float) -> np.ndarray:
        """Mixture over the positions ``i = 1..b`` of Erlang(``b − i``, rate), weight 1/b each."""
        b = self.batch
        x = (grid + step) * self.rate_hz
        cdf = np.full_like(grid, 1.0 / b)  # the last request of a batch does not wait
        term = np.exp(-x)  # P(N = 0) for a Poisson count N of mean x
        below = np.zeros_like(grid)
        for k in range(b - 1):  # Erlang(k + 1) CDF = 1 − P(N ≤ k)
            below += term
            cdf += (1 - below) / b
            term = term * x / (k + 1)
        return np.diff(cdf, prepend=0.0)


Delay = Wait | DeviceWait | Forming


def latency_distribution(fixed_s: float, delays: Sequence[Delay]) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, cdf)`` of ``fixed_s`` plus the independent ``delays``, on a grid wide enough
    for the tails (25 tail scales); an infinite mean gives the single point ``inf``."""
    used = [d for d in delays if d.mean_s > 0]
    mean = sum(d.mean_s for d in used)
    if math.isinf(mean):
        return np.array([math.inf]), np.array([1.0])
    if mean <= 0:
        return np.array([fixed_s]), np.array([1.0])
    upper = 1.5 * mean + 25 * max(d.tail_s for d in used)
    step = upper / GRID_POINTS
    grid = np.arange(GRID_POINTS) * step
    pmfs = [d.pmf(grid, step) for d in used]
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
