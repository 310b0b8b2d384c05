"""The link emulator's timing model and its proxy, without agents."""

from __future__ import annotations

import time

import pytest

from qsplit.testbed import LinkClock, LinkProxy, LinkShape, ProbeServer, probe_request


def test_clock_serialises_bytes_then_adds_latency() -> None:
    clock = LinkClock(LinkShape(latency_s=0.010, bandwidth_bytes_per_s=1000.0))
    assert clock.delivery_time(500, arrived_at=1.0) == pytest.approx(1.0 + 0.5 + 0.010)
    # Arriving while the link is busy: waits for the previous bytes to leave.
    assert clock.delivery_time(100, arrived_at=1.2) == pytest.approx(1.5 + 0.1 + 0.010)
    # Arriving after the link went idle: starts at once.
    assert clock.delivery_time(100, arrived_at=3.0) == pytest.approx(3.0 + 0.1 + 0.010)


def test_connections_on_one_link_share_its_bandwidth() -> None:
    clock = LinkClock(LinkShape(latency_s=0.0, bandwidth_bytes_per_s=1e6))
    first = clock.delivery_time(1_000_000, arrived_at=0.0)
    second = clock.delivery_time(1_000_000, arrived_at=0.0)
    assert (first, second) == pytest.approx((1.0, 2.0))


def _round_trip(address: str, size: int) -> float:
    with probe_request(address) as request:
        request(b"")  # connection set-up is not part of the link
        start = time.perf_counter()
        request(bytes(size))
        return time.perf_counter() - start


def test_proxy_delays_each_direction_by_its_own_link() -> None:
    server = ProbeServer()
    forward = LinkClock(LinkShape(latency_s=0.030, bandwidth_bytes_per_s=10e6))
    backward = LinkClock(LinkShape(latency_s=0.010, bandwidth_bytes_per_s=10e6))
    proxy = LinkProxy(lambda: (server.host, server.port), forward, backward)
    try:
        size = 500_000
        best = min(_round_trip(proxy.address, size) for _ in range(3))
        expected = 0.030 + size / 10e6 + 0.010
        assert expected <= best <= expected + 0.003
    finally:
        proxy.close()
        server.close()


def test_closing_the_proxy_cuts_open_connections() -> None:
    server = ProbeServer()
    clock = LinkClock(LinkShape(latency_s=0.0, bandwidth_bytes_per_s=1e9))
    proxy = LinkProxy(lambda: (server.host, server.port), clock, None)
    with probe_request(proxy.address, timeout_s=5) as request:
        assert request(b"x")
        proxy.close()
        with pytest.raises(Exception, match="link probe"):
            request(b"y")
    server.close()
