"""The adaptive scenario's report parts: phases cut by schedule events, the per-phase table and
the latency-over-time figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsplit.report import (
    Phase,
    Timeline,
    TimelinePoint,
    phase_rows,
    phase_table,
    phases,
    plot_timelines,
)

EVENTS = [(8.0, "device→edge 2 MB/s"), (20.0, "device→edge 20 MB/s"), (8.0, "device→cloud 2 MB/s")]


def test_events_at_one_time_share_a_phase() -> None:
    assert phases(EVENTS, 30.0) == (
        Phase("nominal", 0.0, 8.0),
        Phase("device→edge 2 MB/s; device→cloud 2 MB/s", 8.0, 20.0),
        Phase("device→edge 20 MB/s", 20.0, 30.0),
    )
    assert phases([], 5.0) == (Phase("nominal", 0.0, 5.0),)


def test_rows_count_requests_by_when_they_were_sent() -> None:
    static = Timeline(
        "static",
        (
            TimelinePoint(0.5, 1.0, "cloud 34"),
            TimelinePoint(1.5, 3.0, "cloud 34"),
            TimelinePoint(9.0, 5.0, "cloud 34"),
            TimelinePoint(12.0, 0.1, "cloud 34", lost=True),
            TimelinePoint(31.0, 1.0, "cloud 34"),  # after the end: the last phase takes it
        ),
    )
    adaptive = Timeline("adaptive", (TimelinePoint(9.5, 2.0, "device 34"),), ((9.2, "device 34"),))
    rows = phase_rows([static, adaptive], phases(EVENTS, 30.0))
    assert [(r.strategy, r.requests, r.lost, r.p50_s, r.p95_s) for r in rows] == [
        ("static", 2, 0, 2.0, 3.0),
        ("static", 2, 1, 5.0, 5.0),
        ("static", 1, 0, 1.0, 1.0),
        ("adaptive", 0, 0, None, None),
        ("adaptive", 1, 0, 2.0, 2.0),
        ("adaptive", 0, 0, None, None),
    ]
    table = phase_table(rows).splitlines()
    assert table[0] == "| strategy | phase | requests | lost | p50 | p95 |"
    assert (
        table[3]
        == "| static | device→edge 2 MB/s; device→cloud 2 MB/s | 2 | 1 | 5000 ms | 5000 ms |"
    )
    assert table[5] == "| adaptive | nominal | 0 | 0 | – | – |"


def test_a_timeline_round_trips_through_its_dict() -> None:
    timeline = Timeline("table", (TimelinePoint(1.0, 0.5, "a", True),), ((1.0, "a"),))
    assert Timeline.from_dict(timeline.to_dict()) == timeline


@pytest.mark.parametrize("strategies", [1, 3])
def test_the_figure_is_written(tmp_path: Path, strategies: int) -> None:
    points = tuple(TimelinePoint(float(t), 1.0 + (t > 8), "cloud 34", t == 12) for t in range(20))
    timelines = [Timeline(f"s{i}", points, ((9.0, "device 34"),)) for i in range(strategies)]
    path = plot_timelines(timelines, phases(EVENTS, 25.0), tmp_path / "img" / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
