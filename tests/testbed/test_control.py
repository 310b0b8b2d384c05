"""Changing a running testbed: link shapes, node speeds, killed and restarted agents, and the
control channel's refusals (real supervisor, agents and link emulators)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import synthetic
from conftest import random_feeds, two_node_infra
from qsplit import testbed as tb
from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.profile import BlockTiming, ComputeProfile, HostReference
from qsplit.runtime import Session, build_deployment, connect
from qsplit.testbed._control import ControlServer, control_request
from qsplit.testbed._frames import FrameReader
from qsplit.testbed._state import state_path

# Slow nodes: any loaded CI host can emulate them (the speed test pads to profiled times).
INFRA = two_node_infra(device="3s", edge="2s", latency="5ms")


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory, host: HostReference) -> tb.Testbed:
    root = tmp_path_factory.mktemp("control")
    infra = root / "infra.yaml"
    infra.write_text(INFRA)
    with tb.Testbed.up(infra, root / "state", owner_pid=os.getpid(), host=host) as running:
        yield running


def _transfer_s(testbed: tb.Testbed, size: int) -> float:
    """The least time of three round trips of ``size`` bytes over device → edge (the least: a
    busy host only ever adds time)."""
    link = testbed.state.link("device", "edge")
    assert link is not None
    times = []
    with tb.probe_request(link.probe) as request:
        request(b"warm-up")
        for _ in range(3):
            start = time.perf_counter()
            request(b"x" * size)
            times.append(time.perf_counter() - start)
    return min(times)


def test_a_rate_change_applies_to_what_is_sent_after_it(testbed: tb.Testbed) -> None:
    size = 400_000  # 50 ms at 8 MB/s, 500 ms at 0.8 MB/s
    fast = _transfer_s(testbed, size)
    link = testbed.set_link("device", "edge", bandwidth_bytes_per_s=0.8e6)
    try:
        assert link.bandwidth_bytes_per_s == 0.8e6 and link.latency_s == 0.005
        slow = _transfer_s(testbed, size)
    finally:
        testbed.set_link("device", "edge", bandwidth_bytes_per_s=8e6)
    assert slow >= 3 * fast, (fast, slow)
    assert slow >= size / 0.8e6  # the new rate is a floor, whatever the load
    assert _transfer_s(testbed, size) < slow / 3  # and the old one is back


def test_a_delay_change_is_seen_by_the_next_probe(testbed: tb.Testbed) -> None:
    testbed.set_link("device", "edge", latency_s=0.2)
    try:
        assert testbed.state.link("device", "edge").latency_s == 0.2  # type: ignore[union-attr]
        assert _transfer_s(testbed, 1) >= 0.2
    finally:
        testbed.set_link("device", "edge", latency_s=0.005)
    assert _transfer_s(testbed, 1) < 0.2


def test_a_slower_node_takes_longer_per_component(testbed: tb.Testbed, tmp_path: Path) -> None:
    """The node as its profile describes it (the demo's path: each component is padded to its
    profiled time), then ``factor`` times slower, then restored."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    graph = analyze(str(path))[1]
    timings = {b: BlockTiming(fp32_s=0.002) for b in graph.block_names}
    profile = ComputeProfile("edge", graph.model.sha256, graph.granularity, timings)
    infra = testbed.infra()
    deployment = build_deployment(
        path, dict.fromkeys(graph.block_names, "edge"), infra, profiles={"edge": profile}
    )
    (component,) = deployment.components
    assert component.compute_s is not None
    target = component.compute_s
    feeds = random_feeds(synthetic.branchy_cnn(), 0)

    def edge_compute_s(session: Session) -> float:
        records = [session.infer_timed(feeds)[1] for _ in range(3)]
        return min(r.compute_s_per_node()["edge"] for r in records)

    with connect(deployment, infra) as session:
        session.infer(feeds)
        normal = edge_compute_s(session)
        testbed.set_node_speed("edge", 10)
        try:
            assert {a.name: a.speed_factor for a in testbed.status()}["edge"] == 10
            slowed = edge_compute_s(session)
        finally:
            testbed.set_node_speed("edge", 1)
        restored = edge_compute_s(session)
    assert normal >= target and slowed >= 10 * target  # padding is a floor, whatever the load
    assert slowed >= 3 * normal and restored < slowed / 3, (normal, slowed, restored)


def test_a_killed_node_comes_back_on_its_address_at_its_speed(testbed: tb.Testbed) -> None:
    before = testbed.state.agents["edge"]
    testbed.set_node_speed("edge", 2)
    try:
        testbed.kill_node("edge")
        status = {a.name: a for a in testbed.status()}
        assert status["edge"].state == "killed" and not status["edge"].alive
        assert testbed.state.agents["edge"].killed
        assert status["device"].state == "ok"
        testbed.restart_node("edge")
        status = {a.name: a for a in testbed.status()}
        assert status["edge"].state == "ok" and status["edge"].pid != before.pid
        assert status["edge"].address == before.address and status["edge"].speed_factor == 2
        assert not testbed.state.agents["edge"].killed
    finally:
        testbed.set_node_speed("edge", 1)


def test_bad_requests_are_refused_with_the_field_and_fix(testbed: tb.Testbed) -> None:
    with pytest.raises(InputError, match=r"no link device->cloud.*device->edge"):
        testbed.set_link("device", "cloud", bandwidth_bytes_per_s=1e6)
    with pytest.raises(InputError, match="nothing to change"):
        testbed.set_link("device", "edge")
    with pytest.raises(InputError, match=r"bandwidth_bytes_per_s: .* out of range.*> 0"):
        testbed.set_link("device", "edge", bandwidth_bytes_per_s=0)
    with pytest.raises(InputError, match=r"latency_s: .* out of range"):
        testbed.set_link("device", "edge", latency_s=-1)
    with pytest.raises(InputError, match=r"factor: factor 0.5 is out of range.*≥ 1"):
        testbed.set_node_speed("edge", 0.5)
    with pytest.raises(InputError, match=r"no node 'phone'.*device, edge"):
        testbed.kill_node("phone")
    state = testbed.refresh()
    address, token = state.control, state.control_token
    assert control_request(address, "wrong", "kill_node", {"node": "edge"}, 10) == {
        "ok": False,
        "error": "control request refused: wrong or missing token",
        "reason": "unauthenticated",
        "field": None,
        "fix": "take the token from the running testbed's state file (Testbed.find)",
    }
    unknown = control_request(address, token, "reboot", {}, 10)
    assert unknown["reason"] == "malformed" and "set_link" in unknown["fix"]
    typed = control_request(address, token, "set_node_speed", {"node": "edge", "factor": "2"}, 10)
    assert typed["field"] == "factor" and "finite number" in typed["error"]
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"\xff\xff\xff\xff")  # a 4 GiB frame is refused before it is read
        # The answer's length and payload may arrive in separate segments: read the frame.
        assert b"request refused" in bytes(FrameReader(raw).read() or b"")
    # None of it stopped the supervisor, the killed node is still up, and it still obeys.
    assert all(a.state == "ok" for a in testbed.status())
    testbed.set_link("device", "edge", latency_s=0.005)


def test_the_state_file_holding_the_secret_is_its_owners_alone(testbed: tb.Testbed) -> None:
    path = state_path(testbed.state_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["control_token"] == testbed.state.control_token


def test_the_server_answers_every_malformed_frame() -> None:
    def fails(request: object) -> dict[str, object]:
        raise RuntimeError("a bug")

    server = ControlServer({"op": fails}, token="secret")
    try:
        for frame in (b"\xff", b"[1, 2]", b'{"token": 3}', b"null"):
            assert server.answer(frame)["ok"] is False
        bug = server.answer(b'{"token": "secret", "op": "op"}')
        assert bug["reason"] == "failed" and "a bug" in str(bug["error"])
    finally:
        server.close()


def test_a_schedule_is_played_in_time_on_the_testbed(testbed: tb.Testbed) -> None:
    schedule = tb.schedule_from_dict(
        {
            "schema_version": 1,
            "events": [
                {"at": "0.6s", "link": ["device", "edge"], "rate": "8MB/s", "delay": "5ms"},
                {"at": "0s", "link": ["device", "edge"], "rate": "1MB/s", "delay": "30ms"},
                {"at": "0.3s", "node": "edge", "speed": 3},
                {"at": "0.6s", "node": "edge", "speed": 1},
            ],
        }
    )
    seen: list[tuple[float, float]] = []

    def during(played: tb.PlayedEvent) -> None:
        link = testbed.refresh().link("device", "edge")
        assert link is not None
        seen.append((link.bandwidth_bytes_per_s, testbed.state.agents["edge"].speed_factor))

    start = time.time()
    played = tb.play(testbed, schedule, start=start, on_event=during)
    assert [p.event for p in played] == list(schedule.events)
    for event in played:
        assert event.applied_at >= start + event.event.at_s
    assert seen == [(1e6, 1.0), (1e6, 3.0), (8e6, 3.0), (8e6, 1.0)]


def test_a_schedule_naming_what_the_testbed_lacks_changes_nothing(testbed: tb.Testbed) -> None:
    schedule = tb.schedule_from_dict(
        {
            "schema_version": 1,
            "events": [
                {"at": "0s", "link": ["device", "edge"], "rate": "1MB/s"},
                {"at": "0s", "link": ["edge", "cloud"], "rate": "1MB/s"},
                {"at": "1s", "node": "cloud", "kill": True},
            ],
        },
        source="drop.yaml",
    )
    with pytest.raises(InputError) as info:
        tb.play(testbed, schedule)
    message = str(info.value)
    assert message.startswith("drop.yaml: 2 event(s) do not fit the running testbed:")
    assert "events[1].link: the testbed has no link edge->cloud" in message
    assert "events[2].node: the testbed has no node 'cloud'" in message
    assert testbed.refresh().link("device", "edge").bandwidth_bytes_per_s == 8e6  # type: ignore[union-attr]


def test_cli_set_play_and_status(testbed: tb.Testbed, tmp_path: Path) -> None:
    def qsplit(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "qsplit", "testbed", *args]
        command += ["--state-dir", str(testbed.state_dir)]
        wide = {**os.environ, "COLUMNS": "200"}  # rich would wrap the status table's cells
        return subprocess.run(command, text=True, capture_output=True, timeout=120, env=wide)

    changed = qsplit("set", "link", "device", "edge", "--rate", "16Mbit/s", "--delay", "20ms")
    assert changed.returncode == 0, changed.stderr
    assert "link device → edge: 20 ms, 2 MB/s" in changed.stdout
    assert qsplit("set", "node", "edge", "--speed", "2").returncode == 0
    status = qsplit("status").stdout
    assert "2× slower" in status and "as profiled" in status and "20 ms" in status
    refused = qsplit("set", "link", "device", "edge", "--rate", "fast")
    assert refused.returncode == 2 and "--rate: cannot read 'fast'" in refused.stderr
    assert "Fix: write e.g. --rate 2MB/s" in refused.stderr
    schedule = tmp_path / "restore.yaml"
    schedule.write_text(
        "schema_version: 1\nevents:\n"
        "  - {at: 0s, link: [device, edge], rate: 8MB/s, delay: 5ms}\n"
        "  - {at: 0.2s, node: edge, speed: 1}\n"
    )
    played = qsplit("play", str(schedule))
    assert played.returncode == 0, played.stderr
    assert "device→edge 8 MB/s 5 ms" in played.stdout and "edge 1× slower" in played.stdout
    link = testbed.refresh().link("device", "edge")
    assert link is not None and (link.bandwidth_bytes_per_s, link.latency_s) == (8e6, 0.005)
    assert testbed.state.agents["edge"].speed_factor == 1
