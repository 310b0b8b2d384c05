"""User-space link emulation: a TCP proxy that delays and rate-limits each direction.

This kernel has no ``netem``, so the testbed puts one proxy in front of every directed pair of
nodes. A byte entering a link leaves it the way a real link would carry it:

    leaves_at = max(arrives_at, link_free_at) + size / bandwidth     (serialisation)
    delivered_at = leaves_at + latency                               (propagation)

``link_free_at`` belongs to the *link*, not the connection (:class:`LinkClock`), so every
connection that crosses the same directed link (an agent's pushes, a requester's inputs, a
link probe) shares its bandwidth, as on a real wire. Data is carried in chunks; each chunk is
released by a writer thread that sleeps until its delivery time, which keeps the emulated delay
accurate to the scheduler's wake-up time (tens of µs on an idle core) rather than an event
loop's millisecond ticks.
"""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CHUNK_BYTES = 64 << 10
MAX_BUFFERED_CHUNKS = 1024
"""A pump holds at most this many chunks (64 MiB): beyond that the sender is slowed by TCP
backpressure instead of the proxy's memory growing without bound."""


@dataclass(frozen=True)
class LinkShape:
    """One direction of a link: one-way latency and bandwidth (bytes per second)."""

    latency_s: float
    bandwidth_bytes_per_s: float


class LinkClock:
    """When each chunk entering one directed link is delivered at its far end."""

    def __init__(self, shape: LinkShape) -> None:
        self.shape = shape
        self._lock = threading.Lock()
        self._free_at = 0.0

    def reshape(self, shape: LinkShape) -> None:
        """Give the link a new latency and bandwidth (the testbed's control channel): bytes
        entering it from now on are carried at the new shape; those already on it keep the
        times they were given, as on a wire whose rate changed after they were sent."""
        with self._lock:
            self.shape = shape

    def delivery_time(self, size: int, arrived_at: float) -> float:
        with self._lock:
            start = max(arrived_at, self._free_at)
            self._free_at = start + size / self.shape.bandwidth_bytes_per_s
            return self._free_at + self.shape.latency_s


class _Pump:
    """Carries one direction of one connection: a reader timestamps chunks, a writer releases
    them at their delivery time (or at once on an unshaped direction)."""

    def __init__(
        self, source: socket.socket, target: socket.socket, clock: LinkClock | None
    ) -> None:
        self._source, self._target, self._clock = source, target, clock
        self._chunks: queue.Queue[tuple[float, bytes] | None] = queue.Queue(MAX_BUFFERED_CHUNKS)
        self.threads = (
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._write, daemon=True),
        )
        for thread in self.threads:
            thread.start()

    def _read(self) -> None:
        # Bytes already waiting when a read returns arrived no later than that read returned,
        # not when the next read returns: the proxy's own copying must not count as link time.
        backlog_since: float | None = None
        try:
            while data := self._source.recv(CHUNK_BYTES):
                now = time.perf_counter()
                arrived = now if backlog_since is None else backlog_since
                due = now if self._clock is None else self._clock.delivery_time(len(data), arrived)
                self._chunks.put((due, data))
                backlog_since = now if _has_data(self._source) else None
        except OSError:
            pass
        finally:
            self._chunks.put(None)

    def _write(self) -> None:
        try:
            while (item := self._chunks.get()) is not None:
                due, data = item
                if (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
                self._target.sendall(data)
            self._target.shutdown(socket.SHUT_WR)
        except OSError:
            _close(self._source)
        finally:
            self._drain()

    def _drain(self) -> None:
        """Unblock a reader stuck on a full queue after the writer gave up."""
        while True:
            try:
                if self._chunks.get_nowait() is None:
                    return
            except queue.Empty:
                return


class LinkProxy:
    """Listens on ``listen_host``; every accepted connection is forwarded to ``target()``,
    shaped by ``forward`` towards the target and by ``backward`` on the way back.

    ``target`` is a callable so proxies can be started before the processes behind them know
    their ports. ``backward=None`` leaves replies unshaped (a link that exists one way only).
    """

    def __init__(
        self,
        target: Callable[[], tuple[str, int]],
        forward: LinkClock,
        backward: LinkClock | None,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self._target, self._forward, self._backward = target, forward, backward
        self._listener = socket.create_server((listen_host, 0))
        self._listener.settimeout(0.2)
        self.address = "{}:{}".format(*self._listener.getsockname()[:2])
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target(), timeout=5)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            _Pump(client, upstream, self._forward)
            _Pump(upstream, client, self._backward)

    def close(self) -> None:
        """Stop accepting and cut every open connection (both ends see a reset or EOF)."""
        self._stop.set()
        _close(self._listener)
        self._thread.join(timeout=2)
        with self._lock:
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()


def _has_data(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
