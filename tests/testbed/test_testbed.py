"""The local testbed: real agent processes behind real user-space link emulators."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

import synthetic
from conftest import WAKE_UP_SLACK_S, random_feeds, session, two_node_infra
from qsplit import testbed as tb
from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.profile import HostReference
from qsplit.runtime import build_deployment, connect

INFRA = two_node_infra()


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory, host: HostReference) -> tb.Testbed:
    root = tmp_path_factory.mktemp("testbed")
    infra = root / "infra.yaml"
    # A public key as a real deployment's file would have: the testbed runs in clear anyway.
    key = 'curve_public_key: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", reference_time: 500ms'
    infra.write_text(INFRA.replace("reference_time: 500ms", key))
    with tb.Testbed.up(infra, root / "state", owner_pid=os.getpid(), host=host) as running:
        yield running


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_agents_are_padded_by_node_time_over_host_time(testbed: tb.Testbed) -> None:
    status = {a.name: a for a in testbed.status()}
    assert set(status) == {"device", "edge"}
    assert all(a.alive and a.listening for a in status.values())
    host = testbed.state.host
    assert host.statistic == tb.AGENT_STATISTIC and host.threads == 1 and host.runs >= 5
    for name, reference_s in (("device", 1.0), ("edge", 0.5)):
        assert status[name].reference_time_s == reference_s
        assert status[name].padding_factor == pytest.approx(reference_s / host.time_s)
    # The agent process was started with that factor.
    device = Path(f"/proc/{status['device'].pid}/cmdline").read_bytes().split(b"\0")
    factor = float(device[device.index(b"--padding-factor") + 1])
    assert factor == pytest.approx(status["device"].padding_factor)


def test_a_host_too_slow_for_a_node_is_refused_before_anything_starts(
    tmp_path: Path, host: HostReference
) -> None:
    infra = tmp_path / "infra.yaml"
    infra.write_text(INFRA.replace("reference_time: 500ms", "reference_time: 1ms"))
    with pytest.raises(InputError) as info:
        tb.Testbed.up(infra, tmp_path / "state", host=host)
    message = str(info.value)
    assert "nodes[1].reference_time: this host is too slow to emulate node 'edge'" in message
    assert "the node's reference time is 1 ms" in message and "Fix:" in message
    assert not (tmp_path / "state").exists()


def _worst_errors(testbed: tb.Testbed) -> tuple[float, float]:
    """Worst latency error (s) and relative bandwidth error over every link, measured once."""
    latency, bandwidth = 0.0, 0.0
    measured = testbed.measure_links(repetitions=5).links
    assert {(m.source, m.target) for m in measured} == {("device", "edge"), ("edge", "device")}
    for m in measured:
        link = testbed.state.link(m.source, m.target)
        assert link is not None
        latency = max(latency, abs(m.latency_s - link.latency_s))
        bandwidth = max(bandwidth, abs(m.bandwidth_bytes_per_s / link.bandwidth_bytes_per_s - 1))
    return latency, bandwidth


def test_links_hold_their_configured_delay_and_rate(testbed: tb.Testbed) -> None:
    # Other jobs on a shared machine only ever delay a probe; three tries tell a loaded
    # machine (one good try) from a wrong emulation (no good try).
    attempts = []
    for _ in range(3):
        attempts.append(_worst_errors(testbed))
        if attempts[-1][0] <= 1e-3 and attempts[-1][1] <= 0.05:
            return
    pytest.fail(f"(latency error s, bandwidth error) per attempt: {attempts}")


def test_split_model_crosses_the_emulated_link(testbed: tb.Testbed, tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    _, graph = analyze(str(path))
    blocks = graph.block_names
    half = len(blocks) // 2
    assignment = {b: "device" if i < half else "edge" for i, b in enumerate(blocks)}
    infra = testbed.infra()
    assert infra.node("edge").curve_public_key is None  # its agents run in clear
    deployment = build_deployment(path, assignment, infra)
    model = onnx.load(path)
    link = testbed.state.link("device", "edge")
    assert link is not None
    with connect(deployment, infra, graph_optimization="disabled") as s:
        s.infer(random_feeds(model, 99))  # warm-up: connections finish their handshakes
        for seed in range(3):
            feeds = random_feeds(model, seed)
            outputs, record = s.infer_timed(feeds)
            expected = session(model).run(None, feeds)
            for name, want in zip(deployment.model_outputs, expected, strict=True):
                np.testing.assert_allclose(outputs[name], want, atol=1e-5, rtol=0)
            hops = [t for t in record.transfers if (t.source, t.target) == ("device", "edge")]
            assert hops
            for hop in hops:
                nominal = link.latency_s + hop.bytes / link.bandwidth_bytes_per_s
                assert nominal - 1e-3 <= hop.transfer_s <= nominal + WAKE_UP_SLACK_S, (hop, nominal)
            # Outputs come back over edge → device: a request cannot beat both delays.
            assert record.latency_s >= 2 * link.latency_s


def test_large_tensors_cross_the_link_emulator_not_shared_memory(
    testbed: tb.Testbed, tmp_path: Path
) -> None:
    """Agents on one host would otherwise hand large tensors over in shared memory."""
    shape = (1, 16, 64, 64)  # 256 KiB, well above the shared-memory threshold
    path = synthetic.save(synthetic.relay(shape), tmp_path / "relay.onnx")
    blocks = analyze(str(path))[1].block_names
    infra = testbed.infra()
    deployment = build_deployment(path, dict(zip(blocks, ("device", "edge"), strict=True)), infra)
    link = testbed.state.link("device", "edge")
    assert link is not None
    feeds = {"x": np.ones(shape, np.float32)}
    with connect(deployment, infra) as s:
        s.infer(feeds)  # warm-up: connections finish their handshakes
        _, record = s.infer_timed(feeds)
        assert all(not stats["shared_tensors"] for stats in s.stats().values())
    (hop,) = [t for t in record.transfers if (t.source, t.target) == ("device", "edge")]
    assert hop.transfer_s >= link.latency_s + hop.bytes / link.bandwidth_bytes_per_s - 1e-3


def test_cli_up_status_down_leaves_nothing_running(tmp_path: Path, host_file: Path) -> None:
    infra = tmp_path / "infra.yaml"
    infra.write_text(INFRA)
    state = tmp_path / "state"
    qsplit = [sys.executable, "-m", "qsplit", "testbed"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*qsplit, *args, "--state-dir", str(state)], text=True, capture_output=True, timeout=120
        )

    up = run("up", "--infra", str(infra), "--host-reference", str(host_file))
    assert up.returncode == 0, up.stderr
    assert "host reference from" in up.stdout
    testbed = tb.Testbed.attach(state)
    assert testbed.state.host == tb.load_host_file(host_file)[0]
    pids = [testbed.state.supervisor_pid, *(a.pid for a in testbed.state.agents.values())]
    again = run("up", "--infra", str(infra))
    assert again.returncode == 2 and "already running" in again.stderr
    status = run("status")
    assert status.returncode == 0 and status.stdout.count(" ok ") == 2
    host_ms = testbed.state.host.time_s * 1e3
    assert f"host: {host_ms:.1f} ms for the reference workload" in status.stdout
    assert "padding factor = node reference time / host" in status.stdout
    for agent in testbed.status():
        assert f"{agent.padding_factor:.2f}×" in status.stdout
    assert "1000 ms" in status.stdout and "500 ms" in status.stdout
    edge = testbed.state.agents["edge"].pid
    os.kill(edge, signal.SIGSTOP)  # alive and listening (the kernel accepts), answers nothing
    try:
        frozen = run("status")
    finally:
        os.kill(edge, signal.SIGCONT)
    assert frozen.returncode == 0 and " deaf " in frozen.stdout and frozen.stdout.count(" ok ") == 1
    resumed = run("status").stdout  # it answers again; having been frozen, it may say stuck
    assert " deaf " not in resumed and resumed.count(" ok ") + resumed.count(" stuck ") == 2
    down = run("down")
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 10
    while not all(map(_gone, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(_gone, pids))
    assert tb.Testbed.find(state) is None
    after = run("status")
    assert after.returncode == 2 and "no testbed is running" in after.stderr


def test_bad_infra_is_reported_before_anything_starts(tmp_path: Path) -> None:
    infra = tmp_path / "infra.yaml"
    infra.write_text(INFRA.replace("8MB/s", "-8MB/s"))
    with pytest.raises(InputError, match="bandwidth"):
        tb.Testbed.up(infra, tmp_path / "state")
    assert not (tmp_path / "state").exists()


def test_cli_calibrate_shows_each_node_factor_without_starting_anything(tmp_path: Path) -> None:
    """The one test that measures the host as ``testbed up`` does without a saved reference;
    the saved file is what ``up --host-reference`` reads, and one for other agents is refused."""
    infra = tmp_path / "infra.yaml"
    infra.write_text(INFRA)
    saved = tmp_path / "host.json"
    command = [sys.executable, "-m", "qsplit", "testbed", "calibrate", "--infra", str(infra)]
    result = subprocess.run(
        [*command, "--out", str(saved)], text=True, capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "for the reference workload" in result.stdout
    assert "1000 ms" in result.stdout and "500 ms" in result.stdout
    host, _ = tb.load_host_file(saved)
    assert f"{host.time_s * 1e3:.1f} ms" in result.stdout and host.whole_s is not None
    foreign = json.loads(saved.read_text())
    foreign["reference"]["threads"] = 2
    saved.write_text(json.dumps(foreign))
    up = [sys.executable, "-m", "qsplit", "testbed", "up", "--infra", str(infra)]
    up += ["--host-reference", str(saved), "--state-dir", str(tmp_path / "state")]
    refused_file = subprocess.run(up, text=True, capture_output=True, timeout=120)
    assert refused_file.returncode == 2
    assert "reference.threads: measured with threads 2" in refused_file.stderr
    assert not (tmp_path / "state").exists()
    demo = [sys.executable, "-m", "qsplit", "demo", "--out", str(tmp_path / "run")]
    refused_demo = subprocess.run(
        [*demo, "--host-reference", str(saved)], text=True, capture_output=True, timeout=120
    )
    assert refused_demo.returncode == 2
    assert "reference.threads: measured with threads 2" in refused_demo.stderr
    assert not (tmp_path / "run").exists()
    too_fast = tmp_path / "fast.yaml"
    too_fast.write_text(INFRA.replace("reference_time: 1s", "reference_time: 1ms"))
    refused = subprocess.run(
        [sys.executable, "-m", "qsplit", "testbed", "calibrate", "--infra", str(too_fast)],
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "too slow to emulate node 'device'" in refused.stderr


def test_the_requesters_infra_file_leaves_out_curve_keys(tmp_path: Path) -> None:
    """The testbed's agents run in clear on loopback: a session given its infra file must not
    insist on CURVE because the original file lists public keys."""
    from qsplit.infra import load_infra
    from qsplit.testbed._state import requester_infra_path
    from qsplit.testbed._supervisor import _write_requester_infra

    original = tmp_path / "infra.yaml"
    key = 'curve_public_key: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", reference_time: 500ms'
    original.write_text(INFRA.replace("reference_time: 500ms", key))
    assert load_infra(original).node("edge").curve_public_key is not None
    addresses = {"device": "127.0.0.1:7101", "edge": "127.0.0.1:7102"}
    _write_requester_infra(load_infra(original), original, addresses, {}, tmp_path)
    written = load_infra(requester_infra_path(tmp_path))
    assert written.node("edge").curve_public_key is None
    assert written.node("edge").address == "127.0.0.1:7102"


OWNER = """\
import json, os, sys, time
from qsplit.testbed import Testbed
from qsplit.testbed import load_host_file
host = load_host_file(sys.argv[3])[0]
testbed = Testbed.up(sys.argv[1], sys.argv[2], owner_pid=os.getpid(), host=host)
pids = [testbed.state.supervisor_pid, *(a.pid for a in testbed.state.agents.values())]
print(json.dumps(pids), flush=True)
time.sleep(600)
"""


def test_a_testbed_stops_when_its_owner_is_killed(tmp_path: Path, host_file: Path) -> None:
    """A demo or test run killed outright (no teardown runs) must not leave agents behind."""
    infra = tmp_path / "infra.yaml"
    infra.write_text(INFRA)
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(infra), str(tmp_path / "state"), str(host_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        pids = json.loads(owner.stdout.readline())
        assert len(pids) == 3 and not any(map(_gone, pids))
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    deadline = time.monotonic() + 30
    while not all(map(_gone, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(map(_gone, pids))
    assert tb.Testbed.find(tmp_path / "state") is None
