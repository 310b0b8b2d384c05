"""What a fleet run measured, summarised (no Ray needed): the records of device classes, their
requests' traces and the nodes' batch logs turned into a window's requests, busy time, batches
and overruns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qsplit.serve import FleetBatch, FleetMeasurement, FleetRequest
from qsplit.serve._emulation import batch_target_s, route_s
from qsplit.serve._fleet import _measure

START = 1000.0  # epoch seconds of the run's time 0


def step(batch: int, start: float, end: float, wait: float, node: str = "edge", size: int = 1):
    return {
        "node": node,
        "replica": "r1",
        "batch": batch,
        "start": START + start,
        "end": START + end,
        "received": START + start + 0.002,
        "returned": START + end + 0.01,
        "target_s": 0.5,
        "size": size,
        "overrun": end - start > 0.5,
        "wait_s": wait,
        "forming_s": wait / 2,  # any value: checked to be carried over apart from the wait
    }


def record(device: int, index: int, sent: float, done: float | None, trace: list) -> dict:
    return {
        "device": device,
        "index": index,
        "sent": START + sent,
        "done": None if done is None else START + done,
        "error": None if done is not None else "TransportError: edge died",
        "trace": trace,
    }


def test_records_become_the_windows_requests_and_node_work() -> None:
    results = {
        "cams": {
            "requests": [
                record(0, 0, 1.0, 2.0, [step(1, 1.5, 1.9, 0.1)]),  # before the window
                record(0, 1, 4.0, 5.0, [step(2, 4.2, 4.6, 0.2)]),
                record(1, 0, 6.0, 7.5, [step(3, 6.4, 7.1, 0.3), step(1, 7.1, 7.3, 0.0, "cloud")]),
                record(1, 1, 8.0, None, []),
            ],
            "runs": [(START + 4.1, False), (START + 6.1, True), (START + 1.0, False)],
        }
    }
    workers = {"edge": ((2.0, 1), (4.0, 2), (8.5, 1), (9.5, 3)), "cloud": ()}
    # The nodes log every batch, also one no recorded request ran in (a request of a class
    # behind gateways has no trace): its busy time counts.
    log = [s for r in results["cams"]["requests"] for s in r["trace"]]
    log.append(step(2, 8.6, 8.8, 0.0, "cloud"))
    m = _measure("fleet", results, log, {"edge": 1, "cloud": 2}, START, (3.0, 9.0), workers)
    assert [(r.device, r.index) for r in m.requests] == [(0, 1), (1, 0), (1, 1)]
    assert m.requests[1].shared_wait_s == pytest.approx({"edge": 0.3, "cloud": 0.0})
    assert m.requests[1].shared_forming_s == pytest.approx({"edge": 0.15, "cloud": 0.0})
    assert m.mean_forming_s("edge") == pytest.approx((0.1 + 0.15) / 2)
    assert m.busy_s == pytest.approx({"edge": 0.4 + 0.7, "cloud": 0.2 + 0.2})
    assert m.batch_sizes == {"edge": {1: 2}, "cloud": {1: 2}}
    assert m.runs == {"cams": 2, "edge": 2, "cloud": 2}
    assert m.overruns == {"cams": 1, "edge": 1, "cloud": 0}
    assert [r.error for r in m.failed()] == ["TransportError: edge died"]
    assert m.completions == 2  # (0, 1) and (1, 0); (0, 0) finished before the window
    assert m.throughput_hz() == pytest.approx(2 / 6)
    assert m.utilisation("cloud") == pytest.approx(0.4 / (2 * 6))
    # The batches started in the window, in start order, with the replica that ran each.
    assert [(b.node, b.batch) for b in m.batches] == [
        ("edge", 2),
        ("edge", 3),
        ("cloud", 1),
        ("cloud", 2),
    ]
    assert m.batches[0].start_s == pytest.approx(4.2) and m.batches[0].end_s == pytest.approx(4.6)
    assert m.batches[0].received_s == pytest.approx(4.202)
    assert m.batches[0].returned_s == pytest.approx(4.61) and m.batches[0].target_s == 0.5
    assert m.batch_replicas("edge") == {"r1"} and m.most_concurrent("edge") == 1
    # Worker replicas sampled within the window only; none for an in-process node.
    assert m.worker_replicas["edge"] == ((4.0, 2), (8.5, 1))
    assert m.workers("edge") == (1, 2) and m.workers("cloud") is None


def test_summaries_of_a_measurement() -> None:
    requests = tuple(
        FleetRequest("a" if i % 2 else "b", 0, i, float(i), float(i) + 0.1 * (i + 1), None, {})
        for i in range(10)
    )
    m = FleetMeasurement("x", 10.0, requests, {"edge": 5.0}, {"edge": 1}, {}, {}, {}, 9)
    np.testing.assert_allclose(m.latencies("a"), [0.2, 0.4, 0.6, 0.8, 1.0])
    assert m.quantile(0.5) == pytest.approx(0.55)
    assert m.utilisation("edge") == 0.5 and m.throughput_hz() == 0.9
    assert math.isnan(m.quantile(0.5, "nobody")) and math.isnan(m.mean_wait_s("edge"))


def test_the_most_batches_of_a_node_at_once() -> None:
    def batch(node: str, replica: str, start: float, end: float) -> FleetBatch:
        return FleetBatch(node, replica, 0, start, start, end, end, end - start, 1, False)

    batches = (
        batch("cloud", "w1", 0.0, 1.0),
        batch("cloud", "w2", 0.5, 1.5),
        batch("cloud", "w1", 1.0, 2.0),  # starts as the first ends: not three at once
        batch("cloud", "w3", 1.2, 1.4),
        batch("edge", "w4", 0.0, 3.0),
    )
    m = FleetMeasurement("x", 3.0, (), {}, {"cloud": 3}, {}, {}, {}, 0, batches)
    assert m.most_concurrent("cloud") == 3 and m.most_concurrent("edge") == 1
    assert m.batch_replicas("cloud") == {"w1", "w2", "w3"} and m.most_concurrent("phones") == 0


def test_emulated_batches_and_routes() -> None:
    assert batch_target_s(0.2, 0.5, 1) == pytest.approx(0.2)
    assert batch_target_s(0.2, 0.5, 4) == pytest.approx(0.5)  # 0.1 shared + 4 × 0.1
    assert batch_target_s(0.2, 0.0, 3) == pytest.approx(0.6)
    assert route_s([[0.005, 1e6], [0.02, 1e7]], 1e6) == pytest.approx(1.005 + 0.12)
