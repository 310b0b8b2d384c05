"""Live estimates of each link's bandwidth and latency and each node's speed, from the requests
a session runs.

Every ``done`` report already carries, per physical hop, the bytes and the time they took
(receiver's arrival minus sender's ``sent_at``), and per component its compute time; the
session feeds each finished request to an :class:`Observer`, which keeps one smoothed series
per directed link and per node, each watched by a change detector.

*Clocks.* A hop's time is read on two hosts' clocks, so an offset between them is in every
sample of that pair, and a constant: it moves the latency (the intercept) and nothing else.
Bandwidth is the slope of time over bytes, fitted when a link's recent transfers differ in size
(at least :data:`SIZE_SPREAD` ×) and so free of any offset. A link whose transfers all have one
size (a fixed split of one model) gives no slope: its latency is then held at the last fitted
value, or the infrastructure file's, and the rest of the time is put down to bandwidth. On one
host (the testbed) the offset is zero.

*Smoothing and changes.* Each series is smoothed by an EWMA of time-per-byte (links) or of the
observed/profiled time ratio (nodes), with a two-sided Page–Hinkley test on the relative
deviation of each sample from the smoothed value. Page–Hinkley accumulates deviations beyond a
tolerance, so a persistent step (a 10× uplink drop) is flagged within three samples while
jitter of a few tens of percent never is, and it costs O(1) per sample. On a change the series
restarts from the samples since the change (the EWMA alone would need ~1/α samples to settle on
the new level, during which a planner would see a link neither old nor new).

*Loaded hosts.* A transfer's time also holds the hosts' scheduling delays: on the 2-core
testbed at load 4–9, 10–50 ms (once 180 ms) on transfers that take 4–20 ms, whatever their
size, so on a fast link one late message reads as a link several times slower. Four rules keep
that from being a change: a deviation counts only beyond :data:`JITTER_S` of time per transfer;
one sample adds at most :data:`PH_STEP_MAX` to a sum, so no single sample is a change; a series
starts from the median of its first :data:`WARMUP` samples (a link's first transfer is often
the slowest) and restarts from the median of the last ones; and a sample moves the EWMA by at
most the tolerance, so an outlier does not shift the level the next samples are judged by.

*In-flight evidence.* A finished request is evidence only once it finishes: after a 10× drop the
first request over the slow link answers seconds later, and until then the series still says
the link is fast. So a session also tells the observer what it is waiting for
(:meth:`Observer.awaiting`): ``bytes`` sent from ``source`` to ``target`` at ``since``, and
``slack_s``, the most time the rest of the path to an answer may take (the receiver's compute,
with a safety factor, and the latencies). While no answer has come, the transfer has taken more
than ``now − since − slack_s``, so the link's bandwidth is at most ``bytes / (now − since −
slack_s)`` once that wait exceeds :data:`AWAIT_FLOOR_S`: an upper bound that tightens as the
wait goes on. A snapshot reports the smaller of
the series' bandwidth (or the nominal one) and the tightest bound, marked ``bounded``; the bound
is dropped when the answer comes (:meth:`Observer.answered`), by which time the finished request's
own sample is in the series. Compressed or not, ``bytes`` is at least what crossed, so the bound
stays an upper bound.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from qsplit.infra import Link
from qsplit.runtime._measure import RequestRecord

ALPHA = 0.2
"""EWMA weight of a new sample."""
PH_TOLERANCE = 0.25
"""Page–Hinkley drift: relative deviations below it (jitter) do not accumulate."""
PH_THRESHOLD = 3.0
"""Page–Hinkley alarm level of the accumulated relative deviation (e.g. three samples 2.5× off,
or five 2× off)."""
PH_STEP_MAX = PH_THRESHOLD / 2
"""Most one sample adds to a Page–Hinkley sum: a change takes at least three samples, so one
message a loaded host delayed, however late, is not one."""
WARMUP = 3
"""Samples whose median is where a series starts, and restarts after a change, from."""
JITTER_S = 0.02
"""Part of a transfer's deviation from its link's level put down to the hosts, not the link
(module docstring, *Loaded hosts*): a 10× drop of a link that carries 128 KiB at 40 MB/s
(3 → 33 ms) is still seen, a 20 ms scheduling delay is not."""
WINDOW = 16
"""Samples per link kept for the latency/bandwidth fit (since the last change)."""
SIZE_SPREAD = 2.0
"""Largest/smallest transfer of a link's window needed to fit latency and bandwidth apart."""
AWAIT_FLOOR_S = 0.5
"""Least unexplained wait that bounds a link: a loaded host, or requests queued behind each
other at a node (``max_in_flight`` > 1), delay answers by a few hundred milliseconds with no
link slow at all, and a small tensor late by 0.1 s would "prove" a link thousands of times
slower than it is (a failover test was moved off a healthy edge plan so)."""


@dataclass(frozen=True)
class LinkEstimate:
    """A directed link as observed."""

    source: str
    target: str
    bandwidth_bytes_per_s: float
    latency_s: float
    samples: int
    """Transfers seen on this link."""
    last_change: float | None
    """``time.time()`` of the last change detected, ``None`` if none."""
    updated: float
    """``time.time()`` of the last transfer seen."""
    bounded: bool = False
    """The bandwidth is the upper bound from a transfer still awaited (see the module
    docstring), lower than what the finished transfers say: it counts however few they are."""

    def link(self) -> Link:
        """As an infrastructure link, to plan with."""
        return Link(self.source, self.target, self.bandwidth_bytes_per_s, self.latency_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "latency_s": self.latency_s,
            "samples": self.samples,
            "last_change": self.last_change,
            "updated": self.updated,
            "bounded": self.bounded,
        }


@dataclass(frozen=True)
class Awaited:
    """A transfer a session is waiting for (see the module docstring, *In-flight evidence*)."""

    source: str
    target: str
    bytes: int
    since: float
    """``time.time()`` when the bytes were sent (or, later, when the session learnt they were)."""
    slack_s: float
    """Most time the answer may take beyond the transfer itself."""

    def bound(self, now: float) -> float:
        """Upper bound on the link's bandwidth while unanswered at ``now`` (``inf`` until the
        wait exceeds the slack by :data:`AWAIT_FLOOR_S`)."""
        spent = now - self.since - self.slack_s
        return self.bytes / spent if spent > AWAIT_FLOOR_S else math.inf


@dataclass(frozen=True)
class NodeEstimate:
    """A node's observed speed against its profile: 2.0 means its components take twice their
    profiled time."""

    node: str
    speed_factor: float
    samples: int
    last_change: float | None
    updated: float
    """``time.time()`` of the last run seen."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "speed_factor": self.speed_factor,
            "samples": self.samples,
            "last_change": self.last_change,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class Observed:
    """What :meth:`Session.observed` returns: every link and node seen so far."""

    links: tuple[LinkEstimate, ...]
    nodes: tuple[NodeEstimate, ...]
    at: float
    """``time.time()`` of the snapshot."""

    def link(self, source: str, target: str) -> LinkEstimate | None:
        return next((e for e in self.links if (e.source, e.target) == (source, target)), None)

    def node(self, name: str) -> NodeEstimate | None:
        return next((e for e in self.nodes if e.node == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "links": [e.to_dict() for e in self.links],
            "nodes": [e.to_dict() for e in self.nodes],
        }


class Series:
    """An EWMA with a two-sided Page–Hinkley change detector on relative deviations, robust to
    outliers (module docstring, *Loaded hosts*)."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.samples = 0
        self.last_change: float | None = None
        self.updated = 0.0
        self._recent: deque[float] = deque(maxlen=WARMUP)
        self._up = self._down = 0.0

    def add(self, sample: float, now: float, allowance: float = 0.0) -> bool:
        """Take a sample; ``True`` when it completes a change (the series then restarts).

        ``allowance``: how far, in the sample's unit, a sample may be off the level for reasons
        outside the series (a link's per-byte time: :data:`JITTER_S` / bytes); only the rest of
        a deviation counts towards a change.
        """
        self.samples += 1
        self.updated = now
        self._recent.append(sample)
        if self.samples <= WARMUP or not self.value:
            self.value = statistics.median(self._recent)
            return False
        gap = sample - self.value
        deviation = math.copysign(max(0.0, abs(gap) - allowance), gap) / self.value
        self._up = max(0.0, self._up + min(deviation - PH_TOLERANCE, PH_STEP_MAX))
        self._down = max(0.0, self._down + min(-deviation - PH_TOLERANCE, PH_STEP_MAX))
        if max(self._up, self._down) > PH_THRESHOLD:
            self.restart(statistics.median(self._recent), now)
            return True
        band = PH_TOLERANCE * self.value
        self.value += ALPHA * max(-band, min(gap, band))
        return False

    def restart(self, value: float, now: float) -> None:
        self.value, self.last_change = value, now
        self._up = self._down = 0.0


class _LinkSeries:
    """One directed link: a window of (bytes, seconds) for the fit, and the time-per-byte
    series."""

    def __init__(self, prior_latency_s: float) -> None:
        self.latency_s = prior_latency_s
        self.window: deque[tuple[int, float]] = deque(maxlen=WINDOW)
        self.per_byte = Series()

    def add(self, size: int, seconds: float, now: float) -> bool:
        """Take a transfer; ``True`` when it completes a change."""
        self.window.append((size, seconds))
        self._fit()
        per_byte = max(seconds - self.latency_s, 1e-9) / size
        if not self.per_byte.add(per_byte, now, allowance=JITTER_S / size):
            return False
        # The samples before the change describe the old link: keep only the newest.
        self.window = deque([(size, seconds)], maxlen=WINDOW)
        return True

    def _fit(self) -> None:
        """Least squares of seconds = latency + bytes × per-byte over the window, when its
        sizes spread enough to tell the two apart."""
        sizes = [s for s, _ in self.window]
        if len(sizes) < 3 or max(sizes) < SIZE_SPREAD * min(sizes):
            return
        n = len(sizes)
        mean_x = sum(sizes) / n
        mean_y = sum(t for _, t in self.window) / n
        sxx = sum((x - mean_x) ** 2 for x in sizes)
        sxy = sum((x - mean_x) * (t - mean_y) for x, t in self.window)
        slope = sxy / sxx
        if slope > 0:
            self.latency_s = max(0.0, mean_y - slope * mean_x)

    def estimate(self, source: str, target: str) -> LinkEstimate:
        per_byte = self.per_byte.value or math.inf
        return LinkEstimate(
            source,
            target,
            bandwidth_bytes_per_s=1.0 / per_byte,
            latency_s=self.latency_s,
            samples=self.per_byte.samples,
            last_change=self.per_byte.last_change,
            updated=self.per_byte.updated,
        )


class Observer:
    """Estimates links and node speeds from finished requests; thread-safe, and shareable by
    several sessions (the old and new deployment of a re-planned stream feed one observer).

    ``links`` are the infrastructure's nominal links: their latencies are the starting point of
    a link whose transfers never differ in size enough to fit one. ``on_change`` is called
    (outside the observer's lock, on the thread that added the request) when a request's
    samples complete a change of any link or node.
    """

    def __init__(
        self, links: Iterable[Link] = (), on_change: Callable[[], None] | None = None
    ) -> None:
        self._on_change = on_change
        self._nominal = {(lk.source, lk.target): lk for lk in links}
        self._prior = {key: lk.latency_s for key, lk in self._nominal.items()}
        self._awaited: dict[object, Awaited] = {}
        self._links: dict[tuple[str, str], _LinkSeries] = {}
        self._nodes: dict[str, Series] = {}
        self._lock = threading.Lock()

    def add(self, record: RequestRecord, profiled_s: Mapping[str, float | None]) -> None:
        """Take a request's transfers and component runs; ``profiled_s`` gives each component's
        profiled time (``None``: unknown, the run is not used for the node's speed)."""
        now = time.time()
        observed: dict[str, float] = {}
        expected: dict[str, float] = {}
        for run in record.runs:
            profiled = profiled_s.get(run.component)
            if profiled:
                observed[run.node] = observed.get(run.node, 0.0) + run.compute_s
                expected[run.node] = expected.get(run.node, 0.0) + profiled
        changed = False
        with self._lock:
            for transfer in record.transfers:
                if transfer.source == transfer.target or transfer.bytes <= 0:
                    continue
                key = (transfer.source, transfer.target)
                if key not in self._links:
                    self._links[key] = _LinkSeries(self._prior.get(key, 0.0))
                changed |= self._links[key].add(transfer.bytes, transfer.transfer_s, now)
            for node, seconds in observed.items():
                series = self._nodes.setdefault(node, Series())
                changed |= series.add(seconds / expected[node], now)
        if changed and self._on_change is not None:
            self._on_change()

    def awaiting(self, key: object, transfer: Awaited) -> None:
        """A session waits for an answer that needs ``transfer`` (``key``: its own name for
        the wait, unique among the sessions sharing this observer)."""
        with self._lock:
            self._awaited[key] = transfer

    def latency_s(self, source: str, target: str) -> float:
        """The link's latency as the infrastructure file gives it (0 for a link it lacks)."""
        return self._prior.get((source, target), 0.0)

    def answered(self, key: object) -> None:
        """The wait ``key`` is over (answered, failed or abandoned)."""
        with self._lock:
            self._awaited.pop(key, None)

    def _estimates(self, now: float) -> tuple[LinkEstimate, ...]:
        """Each link's estimate, lowered to the tightest in-flight bound where that is lower."""
        estimates = {key: s.estimate(*key) for key, s in self._links.items()}
        for wait in self._awaited.values():
            key, bound = (wait.source, wait.target), wait.bound(now)
            base = estimates.get(key)
            if base is None and key in self._nominal:  # not seen yet: bound the nominal link
                link = self._nominal[key]
                base = LinkEstimate(*key, link.bandwidth_bytes_per_s, link.latency_s, 0, None, 0)
            if base is not None and bound < base.bandwidth_bytes_per_s:
                estimates[key] = replace(base, bandwidth_bytes_per_s=bound, bounded=True)
        return tuple(estimates[key] for key in sorted(estimates))

    def snapshot(self) -> Observed:
        with self._lock:
            now = time.time()
            return Observed(
                links=self._estimates(now),
                nodes=tuple(
                    NodeEstimate(n, s.value or 1.0, s.samples, s.last_change, s.updated)
                    for n, s in sorted(self._nodes.items())
                ),
                at=now,
            )
