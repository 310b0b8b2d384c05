"""Schedule files: validation that names every problem, and playing one on a testbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsplit import testbed as tb
from qsplit.errors import InputError

GOOD = """\
schema_version: 1
events:
  - {at: 12s, node: edge, kill: true}
  - {at: 5s, link: [device, edge], rate: 2MB/s}
  - {at: 5s, link: [device, edge], delay: 20ms}
  - {at: 8s, node: edge, speed: 2.5}
  - {at: 20s, node: edge, restart: true}
"""


def test_a_schedule_reads_units_and_plays_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    path.write_text(GOOD)
    schedule = tb.load_schedule(path)
    assert [(e.at_s, e.action) for e in schedule.events] == [
        (5.0, "set_link"),
        (5.0, "set_link"),
        (8.0, "set_node_speed"),
        (12.0, "kill_node"),
        (20.0, "restart_node"),
    ]
    rate, delay, speed = schedule.events[:3]
    assert rate.target == ("device", "edge") and rate.bandwidth_bytes_per_s == 2e6
    assert rate.latency_s is None and delay.latency_s == pytest.approx(0.02)
    assert speed.speed_factor == 2.5 and schedule.duration_s == 20.0
    assert [e.describe() for e in schedule.events] == [
        "device→edge 2 MB/s",
        "device→edge 20 ms",
        "edge 2.5× slower",
        "kill edge",
        "restart edge",
    ]


def test_moments_tell_links_changed_alike_together() -> None:
    events = [
        {"at": "8s", "link": ["device", "edge"], "rate": "1MB/s"},
        {"at": "8s", "link": ["device", "cloud"], "rate": "1MB/s"},
        {"at": "8s", "link": ["edge", "cloud"], "delay": "80ms"},
        {"at": "9s", "node": "cloud", "kill": True},
        {"at": "9s", "node": "edge", "speed": 2},
    ]
    schedule = tb.schedule_from_dict({"schema_version": 1, "events": events})
    assert schedule.moments() == (
        (8.0, "device→edge, device→cloud 1 MB/s; edge→cloud 80 ms"),
        (9.0, "kill cloud; edge 2× slower"),
    )


def test_every_problem_is_named_with_its_field_and_fix() -> None:
    events = [
        {"at": 5, "link": ["device", "edge"], "rate": "2MB/s"},
        {"at": "1s", "node": "edge", "kill": False},
        {"at": "1s", "node": "edge"},
        {"at": "1s", "link": ["device", "edge"], "rate": "fast"},
        {"at": "1s", "node": "edge", "speed": 0.5, "colour": "red"},
        {"at": "1s", "link": ["device", "edge"], "rate": "1MB/s", "kill": True},
    ]
    with pytest.raises(InputError) as info:
        tb.schedule_from_dict({"schema_version": 1, "events": events}, source="s.yaml")
    lines = str(info.value).splitlines()
    assert lines[0] == "s.yaml: 7 problem(s) in the schedule file:"
    expected = [
        "events[0].at: duration 5 has no unit",
        "events[1].kill: input should be True. Fix: write `kill: true`",
        "events[2]: a node event takes exactly one of `speed:`, `kill: true`, `restart: true`",
        "events[3].rate: cannot read 'fast' as a bandwidth",
        "events[4].speed: input should be greater than or equal to 1",
        "events[4].colour: unknown field. Fix: remove it",
        "events[5]: a link event takes only `rate:` and `delay:`",
    ]
    for start in expected:
        assert any(line.startswith(f"  - {start}") for line in lines), start
    assert all("Fix: " in line for line in lines[1:])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([{"at": "1s", "node": "edge", "kill": True}], "(top level): expected a mapping"),
        ({"events": [{"at": "1s", "node": "edge", "kill": True}]}, "schema_version: field req"),
        ({"schema_version": 1, "events": []}, "events: list should have at least 1 item"),
    ],
)
def test_a_document_of_the_wrong_shape_says_what_to_write(document: object, message: str) -> None:
    with pytest.raises(InputError, match="Fix: ") as info:
        tb.schedule_from_dict(document, source="s.yaml")
    assert message in str(info.value)


def test_unreadable_files_are_reported_with_their_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the file"):
        tb.load_schedule(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("events: [\n")
    with pytest.raises(InputError, match=r"broken\.yaml: not valid YAML"):
        tb.load_schedule(broken)
