"""The queueing approximation of a shared node, and the latency distribution it implies.

A shared node is a pool of ``c`` identical replicas serving one FIFO queue of *batches*. Requests
for the same component (the same blocks on the node, from any device class) are grouped into
batches of the node's batch size ``b``; a batch of group ``g`` takes ``t_g(b)`` on a replica.

Waiting for a replica follows the **Allen–Cunneen** approximation of the G/G/c queue::

    Wq = C(c, c·ρ) · S̄ / (c·(1 − ρ)) · (ca² + cs²) / 2

with ``C`` the Erlang-C probability of waiting, ``S̄`` the mean batch service time, ``ρ`` the
utilisation, ``cs²`` the squared coefficient of variation of batch service times (0 for one
component: a component's time is deterministic) and ``ca²`` that of batch inter-arrival times:
``1/b`` for full batches of a Poisson stream (Erlang-b gaps); arrivals that are another node's
departures carry their own variability (:mod:`._arrivals`).
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
    """One replica's batcher for one component: a batch opens at its first request and closes
    at ``batch`` requests or ``timeout_s`` after it opened, whichever comes first (Serve's
    ``max_batch_size`` and ``batch_wait_timeout_s``); ``rate_hz`` is the Poisson stream this
    batcher sees inside a batch's window — for arrivals from another node, the rate with their
    chance of an empty window (:func:`._arrivals.window_rate`). ``timeout_s = inf`` is the
    fixed-size batch.

    With ``N(t)`` the Poisson count of arrivals in ``t``, a batch holds
    ``K = min(1 + N(T), b)`` requests, so ``P(K ≥ i) = P(N(T) ≥ i − 1)``. The request in
    position ``i`` (present when ``K ≥ i``, arrived ``s`` after the opener) waits
    ``min(T − s, E_{b−i})``, ``E_k`` the Erlang(k) time of the ``k`` arrivals still needed;
    over the requests (position ``i`` with weight ``P(K ≥ i)/E[K]``) the wait's survival is::

        P(W > w) = 1/E[K] · Σ_{i=1..b} P(N(w) ≤ b − i − 1) · P(N(T − w) ≥ i − 1),   w < T

    and 0 from ``T``: for ``T = ∞`` the Erlang mixture of full batches.

    The delay it stands for in a request's latency also holds the batch's ``K − 1`` other
    items' time, ``(K − 1)·per_item_s``, which is tied to the wait (the opener of a batch the
    time-out closes waits ``T`` and runs alone): :meth:`pmf` is their sum's exact distribution.
    Position ``i`` of a full batch waits ``e`` (Erlang(b − i) density, times
    ``P(N(T − e) ≥ i − 1)`` for the position to be reached in time) and runs ``b − 1`` others;
    position ``i`` of a batch the time-out closes with ``n`` more arrivals waits ``u = T − s``
    (density of ``S_{i−1}`` at ``T − u`` times ``P(N(u) = n)``) and runs ``i − 1 + n`` others.
    """

    batch: int
    rate_hz: float
    timeout_s: float = math.inf
    per_item_s: float = 0.0

    @property
    def mean_size(self) -> float:
        """``E[K]``: the mean size of a batch."""
        return float(self._size_tail().sum())

    @property
    def request_size(self) -> float:
        """``E[K²]/E[K]``: the mean size of the batch a request is in."""
        tail = self._size_tail()
        return float(np.dot(2 * np.arange(1, self.batch + 1) - 1, tail) / tail.sum())

    @property
    def size_second(self) -> float:
        """``E[K²]``."""
        return self.request_size * self.mean_size

    @property
    def size_pmf(self) -> np.ndarray:
        """``P(K = k)`` for ``k = 1..b``."""
        return -np.diff(self._size_tail(), append=0.0)

    def close_scv(self, arrival_scv: float = 1.0) -> float:
        """Squared coefficient of variation of the time between closes, the arrivals of
        variability ``arrival_scv`` at ``rate_hz``.

        A gap is an exponential wait for the next opener plus ``Y = min(T, E_{b−1})``, the time
        the batch stays open (``1/b`` for full batches of Poisson arrivals: Erlang(b) gaps).
        Arrivals of another variability add QNA's ``(arrival_scv − 1)/E[K]`` (a batch's gap as
        the sum of ``K`` arrival gaps): at batch 1 the closes are the arrivals."""
        if self.batch <= 1 or self.rate_hz <= 0:
            return arrival_scv
        lam, open_mean, open_second = self.rate_hz, *self._open_moments()
        mean = 1 / lam + open_mean
        gap_scv = (1 / lam**2 + open_second - open_mean**2) / mean**2
        return gap_scv + (arrival_scv - 1) / self.mean_size

    def close_within(self, rate_hz: float, gap_s: float) -> float:
        """Chance that a close follows the previous one within ``gap_s``, the batcher fed
        ``rate_hz`` requests a second: the opener's wait, exponential of the mean that makes
        the closes ``rate_hz / E[K]`` a second, plus ``Y``, the time the batch stays open."""
        if gap_s <= 0:
            return 0.0
        if self.batch <= 1 or (self.rate_hz <= 0 and math.isinf(self.timeout_s)):
            return -math.expm1(-rate_hz * gap_s)
        open_mean, _ = self._open_moments()
        opener = max(self.mean_size / rate_hz - open_mean, 1e-12)
        e = np.linspace(0.0, gap_s, 2049)
        y = gap_s - e
        opened = 1 - _poisson_cdf(self.rate_hz * y, self.batch - 1)[self.batch - 2]
        opened = np.where(y >= self.timeout_s, 1.0, opened)  # P(Y ≤ y)
        return float(np.trapezoid(np.exp(-e / opener) / opener * opened, e))

    @property
    def wait_s(self) -> float:
        """The mean wait for the batch to close."""
        if self._idle:
            return 0.0
        if math.isinf(self.timeout_s):
            return (self.batch - 1) / (2 * self.rate_hz)
        grid = np.linspace(0.0, self._horizon(), 4097)
        return float(np.trapezoid(self._survival(grid), grid))

    @property
    def mean_s(self) -> float:
        """The mean delay: the wait plus the other items' time."""
        if self._idle:
            return 0.0
        return self.wait_s + (self.request_size - 1) * self.per_item_s

    @property
    def _idle(self) -> bool:
        """No request ever waits: batches of 1, no time-out, or full batches of no requests.
        A window rate of 0 with a time-out is not idle: every batch's opener waits ``T``
        alone (arrivals spaced wider than the time-out)."""
        no_window = self.rate_hz <= 0 and math.isinf(self.timeout_s)
        return self.batch <= 1 or self.timeout_s <= 0 or no_window

    @property
    def tail_s(self) -> float:
        if self.mean_s <= 0:
            return 0.0
        filled = self.batch / self.rate_hz if self.rate_hz > 0 else math.inf
        return min(filled, self.timeout_s) + self.batch * self.per_item_s

    def pmf(self, grid: np.ndarray, step: float) -> np.ndarray:
        b, lam, timeout, item = self.batch, self.rate_hz, self.timeout_s, self.per_item_s
        out = np.zeros_like(grid)

        def place(offset_s: float, weights: np.ndarray) -> None:
            shift = round(offset_s / step)
            if shift < out.size:
                out[shift:] += weights[: out.size - shift]

        def atom(at_s: float, weight: float) -> None:
            index = max(math.ceil(at_s / step - 1e-9) - 1, 0)
            if index < out.size:
                out[index] += weight

        x = grid + step / 2
        inside = x < timeout
        for i in range(1, b + 1):
            needed = b - i
            reached = np.ones_like(x)  # P(N(T − e) ≥ i − 1)
            if i > 1 and not math.isinf(timeout):
                reached = 1 - _poisson_cdf(lam * np.clip(timeout - x, 0.0, None), i - 1)[i - 2]
            if needed == 0:
                atom((b - 1) * item, self._size_tail()[-1])
            else:
                density = lam * _poisson_pmf(lam * x, needed - 1) * reached * inside
                place((b - 1) * item, density * step)
            if math.isinf(timeout):
                continue
            for n in range(needed):
                if i == 1:
                    atom(timeout + n * item, float(_poisson_pmf(np.array([lam * timeout]), n)[0]))
                else:
                    opened = lam * _poisson_pmf(lam * np.clip(timeout - x, 0.0, None), i - 2)
                    place((i - 1 + n) * item, opened * _poisson_pmf(lam * x, n) * inside * step)
        return out / self.mean_size

    def _horizon(self) -> float:
        """Where the wait is over: ``T``, or far in the Erlang tail of a full batch."""
        if self.rate_hz <= 0:
            return self.timeout_s
        return min(self.timeout_s, 50 * self.batch / self.rate_hz)

    def _size_tail(self) -> np.ndarray:
        """``P(K ≥ i)`` for ``i = 1..b``."""
        if math.isinf(self.timeout_s):
            return np.ones(self.batch)
        at_most = _poisson_cdf(np.array([self.rate_hz * self.timeout_s]), self.batch)[:, 0]
        return np.concatenate([[1.0], 1 - at_most[: self.batch - 1]])

    def _survival(self, w: np.ndarray) -> np.ndarray:
        b, lam, timeout = self.batch, self.rate_hz, self.timeout_s
        below = _poisson_cdf(lam * w, b)  # below[k] = P(N(w) ≤ k)
        if math.isinf(timeout):
            left = np.ones((b, w.size))
        else:
            rest = _poisson_cdf(lam * np.clip(timeout - w, 0.0, None), b)
            left = np.vstack([np.ones((1, w.size)), 1 - rest[: b - 1]])  # P(N(T − w) ≥ i − 1)
        total = np.zeros_like(w)
        for i in range(1, b):  # position b never waits
            total += below[b - i - 1] * left[i - 1]
        return np.where(w < timeout, total / self.mean_size, 0.0)

    def _open_moments(self) -> tuple[float, float]:
        """``E[Y]`` and ``E[Y²]`` of the time a batch stays open."""
        lam, b = self.rate_hz, self.batch
        if math.isinf(self.timeout_s):
            return (b - 1) / lam, (b - 1) * b / lam**2
        grid = np.linspace(0.0, self._horizon(), 4097)
        survival = _poisson_cdf(lam * grid, b)[b - 2]  # P(E_{b−1} > y) = P(N(y) ≤ b − 2)
        return (
            float(np.trapezoid(survival, grid)),
            float(np.trapezoid(2 * grid * survival, grid)),
        )


def _poisson_pmf(means: np.ndarray, k: int) -> np.ndarray:
    """``P(N = k)`` for each Poisson mean."""
    return np.exp(-means) * means**k / math.factorial(k)


def _poisson_cdf(means: np.ndarray, count: int) -> np.ndarray:
    """``P(N ≤ k)`` for ``k = 0..count − 1`` (rows) and each Poisson mean (columns)."""
    result = np.empty((count, means.size))
    term = np.exp(-means)
    total = np.zeros_like(means)
    for k in range(count):
        total = total + term
        result[k] = total
        term = term * means / (k + 1)
    return np.minimum(result, 1.0)


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
