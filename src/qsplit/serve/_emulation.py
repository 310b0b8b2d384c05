"""Emulated nodes and links on the Ray path, as plain functions and values (no Ray): what a run
is padded to, and how long a tensor takes on a planned link.

Shared replicas and device actors pad like the testbed's ``--emulated`` agents
(docs/testbed.md): a run that finished early sleeps until its target; one that took longer is
an *overrun*, counted and reported, never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

TRACE = "qsplit.trace/"
"""Prefix of the entries a shared replica adds to its outputs: one per component a request
ran through (its node, queueing wait and batch), passed on by every later replica."""

LINKS = "qsplit.links"
"""Key of the part a caller adds to a shared call: the links its inputs cross from other shared
nodes, as ``[[tensors, hops], ...]``, ``hops`` a list of ``[latency_s, bandwidth_bytes_per_s]``."""

Hops = Sequence[Sequence[float]]
"""A route as plain numbers: ``[[latency_s, bandwidth_bytes_per_s], ...]``, one per link."""


def batch_target_s(compute_s: float, fixed_fraction: float, batch: int) -> float:
    """A batch's emulated time: the node's batch-1 time ``compute_s`` of which the part
    ``fixed_fraction`` is shared by the batch (``qsplit.fleet.BatchProfile``)."""
    return compute_s * (fixed_fraction + (1.0 - fixed_fraction) * batch)


def route_s(hops: Hops, size_bytes: float) -> float:
    """Store and forward over ``hops``: each link's latency plus the bytes at its rate."""
    return sum(latency + size_bytes / bandwidth for latency, bandwidth in hops)


def tensor_bytes(values: Mapping[str, np.ndarray], names: Sequence[str]) -> int:
    return sum(int(values[n].nbytes) for n in names if n in values)


def next_arrival(rate_hz: float, start_s: float, rng: np.random.Generator) -> float:
    """The next arrival of a Poisson stream of ``rate_hz`` after ``start_s``."""
    return start_s + float(rng.exponential(1.0 / rate_hz))
