"""The runtime's summary counts per request and per link, as the cost model prices them."""

from __future__ import annotations

import pytest

from qsplit.runtime import ComponentRun, RequestRecord, Transfer, summarize


def _record(request: str, scale: float, *, error: str | None = None) -> RequestRecord:
    """A request whose device→edge link carries two messages (the requester's input and a
    component's push), plus a within-node hand-over that no link carries."""
    return RequestRecord(
        request=request,
        latency_s=0.1 * scale,
        runs=(ComponentRun("c0", "device", 0.02 * scale), ComponentRun("c1", "edge", 0.03)),
        transfers=(
            Transfer("device", "edge", 1_000, 0.004 * scale),
            Transfer("device", "edge", 3_000, 0.006 * scale),
            Transfer("edge", "device", 500, 0.001),
            Transfer("device", "device", 9_999, 0.5),
        ),
        error=error,
    )


def test_links_are_totals_per_request_then_medians() -> None:
    records = [
        _record("r0", 1.0),
        _record("r1", 2.0),
        _record("r2", 3.0),
        _record("x", 9, error="x"),
    ]
    summary = summarize(records, wall_s=1.0)
    links = {(lk["from"], lk["to"]): lk for lk in summary["links"]}
    assert set(links) == {("device", "edge"), ("edge", "device")}
    assert links["device", "edge"]["bytes_per_request"] == 4_000
    assert links["device", "edge"]["transfer_s"] == pytest.approx(0.020)  # median of 10/20/30 ms
    assert links["edge", "device"] == {
        "from": "edge",
        "to": "device",
        "bytes_per_request": 500,
        "transfer_s": 0.001,
    }
    assert summary["failed"] == 1 and summary["latency_s"]["median"] == pytest.approx(0.2)
    assert records[0].bytes_per_link() == {("device", "edge"): 4_000, ("edge", "device"): 500}
