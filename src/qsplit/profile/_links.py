"""Link profiling: one-way latency and bandwidth between two endpoints.

Transport-agnostic: the caller passes ``request(payload) -> reply``, one round trip over
whatever the agents already use (a zmq REQ socket, a TCP stream). The far end answers every
probe with :func:`answer_probe`, a short acknowledgement, so that a round trip carries the
payload one way only:

    round trip(size) = latency(→) + size / bandwidth(→) + latency(←)

* **Latency** = half the median round trip of empty probes. This assumes a symmetric link
  latency (true for the testbed's emulated links and for most wired paths; with asymmetric
  links, the result is the mean of the two directions).
* **Bandwidth** = 1 / slope of the median round trip against payload size (least squares over
  several sizes), so fixed per-message costs fall into the intercept instead of lowering it.

The runtime's agents call :func:`measure_link` for each directed link; :func:`zmq_request` wraps
a connected zmq REQ socket as ``request``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from qsplit.errors import TransportError
from qsplit.profile._types import LinkMeasurement

Request = Callable[[bytes], bytes]
"""One round trip: send a payload to the far end, return its reply."""

PROBE_ACK = b"ack"
DEFAULT_SIZES = (0, 64 << 10, 256 << 10, 1 << 20)


def answer_probe(payload: bytes) -> bytes:
    """What the far end of a link replies to a probe: a fixed short acknowledgement, whatever
    the payload's size (the measured direction is the probe's)."""
    del payload
    return PROBE_ACK


def measure_link(
    request: Request,
    *,
    source: str,
    target: str,
    sizes: Sequence[int] = DEFAULT_SIZES,
    repetitions: int = 7,
    warmup: int = 2,
) -> LinkMeasurement:
    """Measure the link ``source → target`` through ``request`` (see the module docstring).

    Sizes are interleaved within each repetition, so a change of load affects all sizes alike.
    """
    if 0 not in sizes or len(set(sizes)) < 3:
        raise ValueError("sizes must include 0 and at least two positive payload sizes")
    payloads = {size: bytes(size) for size in sizes}
    for _ in range(warmup):
        for size in sizes:
            _round_trip(request, payloads[size])
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(repetitions):
        for size in sizes:
            times[size].append(_round_trip(request, payloads[size]))
    medians = {size: statistics.median(t) for size, t in times.items()}
    xs = np.array(sorted(medians), dtype=float)
    slope = float(np.polyfit(xs, [medians[int(x)] for x in xs], 1)[0])
    return LinkMeasurement(
        source=source,
        target=target,
        latency_s=medians[0] / 2,
        bandwidth_bytes_per_s=1.0 / slope if slope > 0 else float("inf"),
    )


def _round_trip(request: Request, payload: bytes) -> float:
    start = time.perf_counter()
    reply = request(payload)
    elapsed = time.perf_counter() - start
    if reply != PROBE_ACK:
        raise TransportError(f"link probe got an unexpected reply ({len(reply)} bytes)")
    return elapsed


def zmq_request(socket: object, timeout_s: float = 10.0) -> Request:
    """``request`` over a connected zmq REQ (or DEALER-as-REQ) socket whose peer replies with
    :func:`answer_probe`. A reply that does not come within ``timeout_s`` is a TransportError."""
    import zmq

    if not isinstance(socket, zmq.Socket):
        raise TypeError("expected a zmq socket")

    def request(payload: bytes) -> bytes:
        socket.send(payload, copy=len(payload) < (64 << 10))
        if not socket.poll(int(timeout_s * 1000)):
            raise TransportError(f"no reply to a link probe within {timeout_s} s")
        return socket.recv()

    return request
