"""Arrivals at a shared node that are another node's departures, QNA-style.

A request visiting the edge and then the cloud reaches the cloud when the edge releases it, so
the cloud's arrivals are not Poisson: a 1-replica edge spaces them at least one batch time
apart, and a batch leaving releases its requests together. Two things depend on it
(docs/fleet.md, *Arrivals through the tiers*):

* **Queueing** (Allen–Cunneen's ``ca²``) takes the squared coefficient of variation of the
  arrivals, propagated as in Whitt's Queueing Network Analyzer: a G/G/c node's departures have
  ``cd² = 1 + (1 − ρ²)(ca² − 1) + ρ²(cs² − 1)/√c`` (:func:`departure_scv`), a flow split off a
  stream with probability ``q`` has ``q·c² + 1 − q`` (:func:`split_scv`), flows merged have the
  rate-weighted mean, and a flow released in groups of ``g`` requests has ``ḡ·c² + Var g/ḡ``
  (the counts' index of dispersion).
* **Batch filling** takes the chance that another request comes within the time-out ``T`` after
  the batch's opener. A flow from a 1-replica node is a renewal process of *groups* (its
  requests in one departing batch) whose gaps are ``G = S + Y``: ``S`` the upstream's batch time
  (nothing leaves sooner), ``Y = 0`` with probability ``p`` (the next batch was already waiting)
  and else exponential (the upstream went idle: the gap is then the wait for its next arrival);
  for M/D/1 departures this is exact with ``p = ρ`` and ``Y`` of mean ``1/λ``. Flows from a
  multi-replica node or from devices keep ``S = 0, p = 0`` (Poisson groups).
  :func:`batch_sizes` gives the batches such flows form, :func:`window_rate` the Poisson rate
  with their mean size, which the batch model (:class:`._queueing.Forming`) then uses inside
  the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qsplit.fleet._queueing import Forming


@dataclass(frozen=True)
class Stream:
    """One flow of requests into a component's batcher (a class's requests at one stage)."""

    rate_hz: float
    """Requests per second."""
    scv: float = 1.0
    """Squared coefficient of variation of the request stream (index of dispersion): 1 for
    Poisson, what Allen–Cunneen's ``ca²`` takes."""
    spacing_s: float = 0.0
    """``S``: least time between two of its groups (the batch time of a 1-replica upstream)."""
    back_to_back: float = 0.0
    """``p``: probability a group follows the previous one after exactly ``S``."""
    group_pmf: tuple[float, ...] = (1.0,)
    """``P(g = n)`` for ``n = 1, 2, …``: its requests arriving together (one upstream batch)."""

    @property
    def group_mean(self) -> float:
        return float(np.dot(np.arange(1, len(self.group_pmf) + 1), self.group_pmf))

    @property
    def _tail_mean_s(self) -> float:
        """Mean of the exponential part of ``Y``: the group gaps average ``ḡ / rate``."""
        if self.back_to_back >= 1:
            return 0.0  # a saturated upstream: every gap is S
        gap = self.group_mean / self.rate_hz
        return max(gap - self.spacing_s, 0.0) / (1 - self.back_to_back)

    def _gaps_within(self, count: int, t: float, first: int = 0) -> float:
        """``P((first + count)·S + Gamma(first + Binomial(count, 1 − p)) ≤ t)``: ``count``
        group gaps, and ``first`` more that are sure to have their exponential part, end by
        ``t``."""
        rest = t - (count + first) * self.spacing_s
        if rest < 0:
            return 0.0
        tail = self._tail_mean_s
        x = rest / tail if tail > 0 else math.inf
        q = 1 - self.back_to_back
        total = 0.0
        for k in range(count + 1):
            shape = k + first
            weight = math.comb(count, k) * q**k * (1 - q) ** (count - k)
            total += weight * _gamma_cdf(shape, x)
        return total

    def groups_within(self, window_s: float, count: int, after_arrival: bool) -> np.ndarray:
        """``P(J ≥ j)`` for ``j = 1..count``: at least ``j`` more of its groups within
        ``window_s`` of one of its groups (``after_arrival``, a renewal from an arrival) or of a
        moment independent of it (the stationary process: the first gap has the equilibrium
        density ``γ·P(G > x)``, uniform on ``[0, S]`` with probability ``γS``, else
        ``S`` plus the exponential part)."""
        result = np.zeros(count)
        for j in range(1, count + 1):
            if after_arrival:
                result[j - 1] = self._gaps_within(j, window_s)
                continue
            groups_hz = self.rate_hz / self.group_mean
            uniform = groups_hz * self.spacing_s
            if uniform > 0:
                starts = (np.arange(UNIFORM_POINTS) + 0.5) / UNIFORM_POINTS * self.spacing_s
                inside = np.mean([self._gaps_within(j - 1, window_s - u) for u in starts])
                result[j - 1] += uniform * inside
            shifted = self._gaps_within(j - 1, window_s, first=1)
            result[j - 1] += (1 - uniform) * shifted
        return result

    def requests_within(self, window_s: float, count: int, after_arrival: bool) -> np.ndarray:
        """``P(R = n)`` for ``n = 0..count`` (the last: at least ``count``) of its requests
        within ``window_s`` (see :meth:`groups_within`)."""
        reach = np.concatenate([[1.0], self.groups_within(window_s, count, after_arrival), [0.0]])
        groups = _capped(np.concatenate([[0.0], self.group_pmf]), count)
        result = np.zeros(count + 1)
        total = np.eye(count + 1)[0]  # zero groups: no request
        for j in range(count + 1):
            result += (reach[j] - reach[j + 1]) * total
            total = _capped(np.convolve(total, groups), count)
        return result


GROUPED = 1.5
"""Mean group size from which a flow is taken as Poisson inside a batch's window."""
UNIFORM_POINTS = 32
"""Midpoints the stationary first gap's uniform part is averaged over."""


def _gamma_cdf(shape: int, x: float) -> float:
    """``P(Gamma(shape, 1) ≤ x)`` for an integer shape (1 for shape 0)."""
    if shape == 0 or math.isinf(x):
        return 1.0
    term = total = math.exp(-x)
    for i in range(1, shape):
        term *= x / i
        total += term
    return max(1 - total, 0.0)


def _capped(pmf: np.ndarray, count: int) -> np.ndarray:
    """``pmf`` over ``0..count``, the mass beyond ``count`` moved to ``count``."""
    out = np.zeros(count + 1)
    out[: min(len(pmf), count + 1)] = pmf[: count + 1]
    out[count] += pmf[count + 1 :].sum()
    return out


def batch_sizes(streams: Sequence[Stream], batch: int, window_s: float) -> np.ndarray:
    """``P(K = k)`` for ``k = 1..batch``: a batch opens with a group of one flow (in
    proportion to the groups' rates) and takes that flow's next groups and the other flows'
    requests (seen from an independent moment) within ``window_s``, up to ``batch``."""
    rates = np.array([s.rate_hz / s.group_mean for s in streams])
    others = [s.requests_within(window_s, batch - 1, after_arrival=False) for s in streams]
    sizes = np.zeros(batch + 1)
    for i, s in enumerate(streams):
        total = _capped(np.concatenate([[0.0], s.group_pmf]), batch)
        total = _capped(np.convolve(total, s.requests_within(window_s, batch - 1, True)), batch)
        for j, pmf in enumerate(others):
            if j != i:
                total = _capped(np.convolve(total, pmf), batch)
        sizes += rates[i] / rates.sum() * total
    return sizes[1:]


def window_rate(streams: Sequence[Stream], batch: int, window_s: float) -> float:
    """The Poisson rate :class:`._queueing.Forming` takes inside a batch's window: the one
    whose batches have the mean size of ``streams``' (:func:`batch_sizes`), at most their
    summed rate; that rate itself when they are Poisson, without a time-out, or at batch 1.

    At most: arrivals that fill batches sooner than Poisson ones (spaced more regularly than
    the window, or in groups) cannot be said by a rate without stretching the wait to fill;
    they are priced as Poisson, over-estimating the wait and the utilisation rather than
    under-estimating them. For the same reason a flow that arrives mostly in groups (``ḡ ≥``
    :data:`GROUPED`: the upstream fills its batches) is taken as Poisson here: its requests
    join a batch together and wait for nobody, which one window rate for every flow of the
    batcher cannot say (docs/fleet.md, *Limits*)."""
    total = sum(s.rate_hz for s in streams)
    streams = [s if s.group_mean < GROUPED else Stream(s.rate_hz) for s in streams]
    unspaced = all(s.spacing_s <= 0 for s in streams)  # batches at least Poisson's: the cap
    if total <= 0 or batch <= 1 or unspaced or not 0 < window_s < math.inf:
        return total

    def mean_size(rate_hz: float) -> float:
        return Forming(batch, rate_hz, window_s).mean_size

    target = float(np.dot(np.arange(1, batch + 1), batch_sizes(streams, batch, window_s)))
    if mean_size(total) <= target:
        return total
    low, high = 0.0, total
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if mean_size(mid) < target else (low, mid)
    return (low + high) / 2


def departure_scv(arrival_scv: float, service_scv: float, rho: float, servers: int) -> float:
    """QNA's squared coefficient of variation of a G/G/c node's departures: the arrivals' at
    light load, the service times' (spread over ``√c`` servers) near saturation."""
    rho = min(rho, 1.0)
    return 1 + (1 - rho**2) * (arrival_scv - 1) + rho**2 * (service_scv - 1) / math.sqrt(servers)


def holding(share: float, size_pmf: np.ndarray) -> float:
    """Chance that a batch of sizes ``P(K = k) = size_pmf[k − 1]`` holds a request of a flow
    that is ``share`` of its requests (each request the flow's independently)."""
    sizes = np.arange(1, len(size_pmf) + 1)
    return 1 - float(size_pmf @ (1 - share) ** sizes)


def departures(rate_hz: float, share: float, size_pmf: np.ndarray, batch_scv: float) -> Stream:
    """A flow of ``rate_hz`` requests, ``share`` of a component's, leaving in its batches
    (sizes ``size_pmf``, departures of variability ``batch_scv``): the batches holding the
    flow are a split of them (QNA), each releasing a group of the flow's requests at once,
    Binomial(``K``, ``share``) given one at least. Without spacing: a 1-replica node's is the
    caller's to add (it depends on the node's batch time and waits)."""
    sizes = np.arange(1, len(size_pmf) + 1)
    held = holding(share, size_pmf)
    groups = np.zeros(len(size_pmf))
    for k, p in zip(sizes, size_pmf, strict=True):
        n = sizes[:k]
        ways = np.array([math.comb(int(k), int(i)) for i in n])
        groups[:k] += p * ways * share**n * (1 - share) ** (k - n) / held
    group = float(sizes @ groups)
    spread = float((sizes - group) ** 2 @ groups)
    scv = group * split_scv(batch_scv, held) + spread / group
    return Stream(rate_hz, scv, group_pmf=tuple(float(g) for g in groups))


def split_scv(scv: float, share: float) -> float:
    """The flow taking each item of a stream of ``scv`` with probability ``share``."""
    return share * scv + 1 - share


def merged_scv(streams: Sequence[Stream]) -> float:
    """QNA's superposition: the rate-weighted mean of the flows' ``scv``."""
    total = sum(s.rate_hz for s in streams)
    return sum(s.rate_hz * s.scv for s in streams) / total if total > 0 else 1.0
