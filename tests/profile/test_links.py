"""Link measurement over loopback zmq, with and without an emulated link in the echo handler."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import zmq

from qsplit.profile import LinkProfile, answer_probe, measure_link, zmq_request


@contextmanager
def echo_peer(delay: Callable[[int], float] = lambda size: 0.0) -> Iterator[zmq.Socket]:
    """A REP peer on 127.0.0.1 answering probes after ``delay(payload size)`` seconds (an
    emulated link), and a REQ socket connected to it."""
    context = zmq.Context()
    server = context.socket(zmq.REP)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if server.poll(20):
                payload = server.recv()
                time.sleep(delay(len(payload)))
                server.send(answer_probe(payload))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = context.socket(zmq.REQ)
    client.connect(f"tcp://127.0.0.1:{port}")
    try:
        yield client
    finally:
        stop.set()
        thread.join()
        client.close(linger=0)
        server.close(linger=0)
        context.term()


def test_loopback_is_fast_and_wide() -> None:
    with echo_peer() as client:
        link = measure_link(zmq_request(client), source="a", target="b", repetitions=5)
    assert (link.source, link.target) == ("a", "b")
    assert 0 < link.latency_s < 5e-3
    assert link.bandwidth_bytes_per_s > 50e6  # loopback moves well over 50 MB/s


def test_emulated_link_is_recovered() -> None:
    # 10 ms each way (the echo sleeps for the round trip's 20 ms) and 20 MB/s.
    latency, bandwidth = 0.010, 20e6
    with echo_peer(lambda size: 2 * latency + size / bandwidth) as client:
        link = measure_link(
            zmq_request(client), source="device", target="edge", repetitions=3, warmup=1
        )
    assert link.latency_s == pytest.approx(latency, rel=0.25)
    assert link.bandwidth_bytes_per_s == pytest.approx(bandwidth, rel=0.25)


def test_link_profile_round_trip(tmp_path) -> None:
    with echo_peer() as client:
        link = measure_link(zmq_request(client), source="a", target="b", repetitions=2)
    path = tmp_path / "links.json"
    LinkProfile((link,)).save(str(path))
    assert LinkProfile.load(str(path)).links == (link,)


def test_sizes_must_allow_a_slope() -> None:
    with pytest.raises(ValueError):
        measure_link(lambda payload: b"", source="a", target="b", sizes=(0, 1024))
