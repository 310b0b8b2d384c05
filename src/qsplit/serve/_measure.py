"""What a fleet run on Ray measured: every request of every emulated device, and what each
shared node did (busy time, batches and the replicas that ran them, runs slower than their
target, worker replicas over time).

Plain values, importable without Ray, so reports and plots (``qsplit fleet demo``) read them
without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FleetRequest:
    """One request of one emulated device."""

    device_class: str
    device: int
    """The device's number in its class (devices that join later get the next numbers)."""
    index: int
    """The request's number on its device."""
    sent_s: float
    """When the device issued it, in seconds since the run started (its Poisson arrival)."""
    done_s: float | None
    """When the device had every model output, in seconds since the run started; ``None``:
    the request failed."""
    error: str | None
    """Why it failed (the component and node named), else ``None``."""
    shared_wait_s: Mapping[str, float]
    """Shared node → seconds the request's closed batch queued at that node before a slot of
    it started the batch (summed over the node's components it visited)."""
    shared_forming_s: Mapping[str, float] = field(default_factory=dict)
    """Shared node → seconds the request waited in a replica's batcher for its batch to close
    (at the batch size or the time-out)."""

    @property
    def latency_s(self) -> float | None:
        return None if self.done_s is None else self.done_s - self.sent_s


@dataclass(frozen=True)
class FleetBatch:
    """One batch a shared node ran, times in seconds since the run started."""

    node: str
    replica: str
    """The Serve replica (Ray actor id) that ran it: the node's replica, or one of its
    workers."""
    batch: int
    """Its number on its node."""
    received_s: float
    """When its server got it: :attr:`start_s` in-process; on a worker, after the hop from
    the front (hidden in the padding when the worker was free)."""
    start_s: float
    """When its server took it (the end of its wait)."""
    end_s: float
    """When it ended, padded to its target unless it overran."""
    returned_s: float
    """When its outputs were back at the node's front (= :attr:`end_s` in-process; later by
    the hop back from a worker)."""
    target_s: float
    """The node's time for the batch (its padding target)."""
    size: int
    overrun: bool


@dataclass(frozen=True)
class FleetMeasurement:
    """One fleet deployment run for a while: the requests sent in the measured window (after
    the warm-up) and each node's work in that window."""

    label: str
    """What was run, e.g. ``fleet``, ``alone``, ``cloud-only``, ``device-only``."""
    duration_s: float
    """Length of the measured window (requests sent in it are the :attr:`requests`)."""
    requests: tuple[FleetRequest, ...]
    busy_s: Mapping[str, float]
    """Shared node → replica-seconds busy running batches (padded) within the window."""
    replicas: Mapping[str, int]
    """Shared node → its replicas (batches it runs at once, across its components)."""
    batch_sizes: Mapping[str, Mapping[int, int]]
    """Shared node → batch size → batches of that size that ran in the window."""
    overruns: Mapping[str, int]
    """Node (shared node or device class) → runs in the window that took longer than their
    emulated target (the host was slower than the node it emulates)."""
    runs: Mapping[str, int]
    """Node (shared node or device class) → runs in the window (batches on a shared node), the
    denominator of :attr:`overruns`."""
    completions: int
    """Requests completed *within* the window, whenever sent: the rate the fleet was served
    at. (Every request of :attr:`requests` is waited for, so an overloaded fleet completes
    them all, late.)"""
    batches: tuple[FleetBatch, ...] = ()
    """The batches the shared nodes started in the window, in start order."""
    worker_replicas: Mapping[str, tuple[tuple[float, int], ...]] = field(default_factory=dict)
    """Shared node → ``(seconds since the run started, running worker replicas)``, sampled
    from Serve through the window; empty for nodes that run their batches in-process."""

    def workers(self, node: str) -> tuple[int, int] | None:
        """The fewest and most worker replicas ``node`` had running in the window; ``None``
        where it ran its batches in-process."""
        counts = [n for _, n in self.worker_replicas.get(node, ())]
        return (min(counts), max(counts)) if counts else None

    def batch_replicas(self, node: str) -> frozenset[str]:
        """The replicas that ran ``node``'s batches in the window."""
        return frozenset(b.replica for b in self.batches if b.node == node)

    def most_concurrent(self, node: str) -> int:
        """The most batches of ``node`` that ran at once (at most its :attr:`replicas`)."""
        events = sorted(
            (t, step)
            for b in self.batches
            if b.node == node
            for t, step in ((b.start_s, 1), (b.end_s, -1))
        )
        running, most = 0, 0
        for _, step in events:  # an end sorts before a start at the same instant
            running += step
            most = max(most, running)
        return most

    def completed(self, device_class: str | None = None) -> tuple[FleetRequest, ...]:
        return tuple(
            r
            for r in self.requests
            if r.done_s is not None and device_class in (None, r.device_class)
        )

    def failed(self) -> tuple[FleetRequest, ...]:
        return tuple(r for r in self.requests if r.done_s is None)

    def latencies(self, device_class: str | None = None) -> np.ndarray:
        """End-to-end latencies (s) of the completed requests, of one class or of all."""
        return np.array([r.latency_s for r in self.completed(device_class)], dtype=float)

    def throughput_hz(self) -> float:
        """Requests completed within the window, per second: below the rate sent when a node
        is saturated."""
        return self.completions / self.duration_s

    def quantile(self, q: float, device_class: str | None = None) -> float:
        """The ``q`` quantile (0.95: p95) of the latencies; ``nan`` without completed requests."""
        latencies = self.latencies(device_class)
        return float(np.quantile(latencies, q)) if latencies.size else float("nan")

    def utilisation(self, node: str) -> float:
        """Busy replica-seconds over the replica-seconds the window offered (a node's batches,
        whatever components they are of, share its replicas: at most 1)."""
        return self.busy_s.get(node, 0.0) / (self.replicas[node] * self.duration_s)

    def mean_wait_s(self, node: str) -> float:
        """Mean queueing time at ``node`` over the completed requests that visited it."""
        waits = [r.shared_wait_s[node] for r in self.completed() if node in r.shared_wait_s]
        return float(np.mean(waits)) if waits else float("nan")

    def mean_forming_s(self, node: str) -> float:
        """Mean wait for a batch to close at ``node`` over the completed requests that visited
        it (0 where it does not batch)."""
        waits = [r.shared_forming_s[node] for r in self.completed() if node in r.shared_forming_s]
        return float(np.mean(waits)) if waits else float("nan")
