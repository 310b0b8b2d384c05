"""Faults with real processes: killed agents, tampered components, hostile frames."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import numpy as np
import onnx
import pytest
import zmq

import synthetic
from agents import infra_for, restart, running_agents, stop
from conftest import random_feeds, session
from qsplit.errors import InputError, TransportError
from qsplit.model import analyze
from qsplit.runtime import AgentSettings, RemoteError, Session, build_deployment, connect
from qsplit.runtime._wire import MAGIC, VERSION, Message, compress, encode
from raw import exchange, frames_of, health

TIMEOUT_S = 3.0


@pytest.fixture
def branchy(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    return path, analyze(str(path))[1].block_names


def two_way(blocks: tuple[str, ...], first: str, second: str) -> dict[str, str]:
    half = len(blocks) // 2
    return {b: first if i < half else second for i, b in enumerate(blocks)}


def test_killed_agent_fails_only_its_requests_naming_it_and_restart_recovers(branchy) -> None:
    path, blocks = branchy
    model = onnx.load(path)
    feeds = random_feeds(model)
    (expected, *_) = session(model).run(None, feeds)
    with running_agents("a", "b", "c") as agents:
        infra = infra_for(agents)
        healthy = build_deployment(path, two_way(blocks, "a", "b"), infra)
        doomed = build_deployment(path, two_way(blocks, "a", "c"), infra)
        with (
            connect(healthy, infra, timeout_s=TIMEOUT_S) as s1,
            connect(doomed, infra, timeout_s=TIMEOUT_S) as s2,
        ):
            s2.infer(feeds)
            agents["c"].kill()
            start = time.monotonic()
            with pytest.raises(TransportError) as caught:
                s2.infer(feeds)
            assert time.monotonic() - start < TIMEOUT_S + 2.0
            assert caught.value.peer == "c" and "'c'" in str(caught.value)
            name = healthy.model_outputs[0]
            np.testing.assert_allclose(s1.infer(feeds)[name], expected, atol=1e-4)
            revived = restart(agents["c"])
            try:  # the session redeploys to the restarted agent by itself (test_recovery.py)
                np.testing.assert_allclose(s2.infer(feeds)[name], expected, atol=1e-4)
            finally:
                stop(revived.process)


def test_agent_killed_mid_stream_fails_its_requests_at_once(branchy) -> None:
    """kill -9 an agent while requests wait on it: they fail within a second, naming it, long
    before their 30 s deadline; a stream through the other agents is untouched."""
    path, blocks = branchy
    model = onnx.load(path)
    feeds = [random_feeds(model, seed) for seed in range(4)]
    with (
        running_agents("a", "b") as fast,
        running_agents("c", args=("--padding-factor", "200")) as slow,  # requests queue at c
    ):
        agents = {**fast, **slow}
        infra = infra_for(agents)
        healthy = build_deployment(path, two_way(blocks, "a", "b"), infra)
        doomed = build_deployment(path, two_way(blocks, "a", "c"), infra)
        with (
            connect(healthy, infra, timeout_s=30) as s1,
            connect(doomed, infra, timeout_s=30) as s2,
            ThreadPoolExecutor(1) as pool,
        ):
            other = pool.submit(lambda: list(s1.stream(feeds * 10, max_in_flight=2)))
            results = []
            for result in s2.stream(feeds * 5, max_in_flight=4):
                results.append(result)
                if len(results) == 2:
                    agents["c"].process.kill()  # SIGKILL
                    killed = time.monotonic()
            elapsed = time.monotonic() - killed
            assert all(r.error is None for r in results[:2])
            failed = [r for r in results[2:] if r.error is not None]
            assert len(failed) >= len(results) - 6  # at most the 4 in flight could finish
            assert all(r.error.peer == "c" and "'c'" in str(r.error) for r in failed)
            assert max(r.record.latency_s for r in failed) < 3 and elapsed < 10
            assert all(r.error is None for r in other.result(timeout=60))


def test_a_tampered_component_is_refused_by_hash(branchy) -> None:
    path, blocks = branchy
    with running_agents("a") as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, dict.fromkeys(blocks, "a"), infra)
        spec = deployment.components[0]
        tampered = dataclasses.replace(spec, onnx=spec.onnx[:-1] + b"\x00")
        bad = dataclasses.replace(deployment, components=(tampered,))
        with Session(bad, device="device") as s, pytest.raises(RemoteError) as caught:
            s.deploy()
        assert caught.value.peer == "a" and "sha256" in str(caught.value)


def raw_send(address: str, frames: list[bytes]) -> None:
    with zmq.Context() as context, context.socket(zmq.DEALER) as socket:
        socket.setsockopt(zmq.LINGER, 2000)
        socket.connect(f"tcp://{address}")
        socket.send_multipart(frames)


def test_hostile_frames_are_counted_and_never_crash_the_agent(branchy) -> None:
    path, blocks = branchy
    token = "s3cret"
    args = ("--token", token, "--max-message-mb", "1")
    with running_agents("a", args=args) as agents:
        address = agents["a"].address
        bad_body = encode(Message("tensors", {"dep": "x"}), token)
        # A tensor said to be in shared memory by a peer that never proved it shares the host.
        unproven = {"name": "x", "dtype": "float32", "shape": [4], "shm": [3, 7]}
        header = {"kind": "tensors", "body": {}, "frames": [unproven], "token": token}
        unproven_shared = [MAGIC + bytes([VERSION]) + msgpack.packb(header)]
        # Compressed frames: a bomb (16 bytes declared, a MiB inside), one declared beyond the
        # message limit, and one whose codec is unknown.
        bomb = frames_of(
            "tensors", {}, [packed([4], "zstd")], compress("zstd", bytes(2**20)), token=token
        )
        too_large = frames_of(
            "tensors", {}, [packed([512, 1024], "lz4")], compress("lz4", b"0"), token=token
        )
        unknown_codec = frames_of("tensors", {}, [packed([4], "brotli")], bytes(16), token=token)
        sent = {
            "malformed": [
                [b"garbage"],
                [MAGIC + bytes([VERSION]) + b"\xc1"],
                bad_body,
                unproven_shared,
                bomb,
                unknown_codec,
            ],
            "version": [[MAGIC + bytes([VERSION + 1]) + msgpack.packb({})]],
            "unauthenticated": [encode(Message("health", {"cid": 1}), "guess")],
            "oversized": [
                [*encode(Message("health"), token), b"\0" * 600_000, b"\0" * 600_000],
                too_large,
            ],
        }
        for messages in sent.values():
            for frames in messages:
                raw_send(address, [bytes(f) for f in frames])
        raw_send(address, [b"\0" * (2 * 2**20)])  # above zmq's per-frame cap: peer dropped
        infra = infra_for(agents)
        deployment = build_deployment(path, dict.fromkeys(blocks, "a"), infra)
        with connect(deployment, infra, token=token) as s:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                rejected = s.stats()["a"]["rejected"]
                if sum(rejected.values()) >= sum(map(len, sent.values())):
                    break
                time.sleep(0.1)
            assert rejected == {reason: len(m) for reason, m in sent.items()}
            model = onnx.load(path)
            feeds = random_feeds(model)
            (expected, *_) = session(model).run(None, feeds)
            output = s.infer(feeds)[deployment.model_outputs[0]]
            np.testing.assert_allclose(output, expected, atol=1e-4)
        assert agents["a"].process.poll() is None


def test_a_bad_compressed_tensor_is_answered_to_its_requester(branchy) -> None:
    """A data message whose frame decompresses to another size than declared: the requester it
    names hears why at once, and the agent serves on."""
    with running_agents("a") as agents:
        address = agents["a"].address
        body = {"dep": "d", "req": "1", "reply_to": b"requester"}
        frames = frames_of("tensors", body, [packed([8], "lz4")], compress("lz4", bytes(64)))
        answer = exchange(address, frames, identity=b"requester")
        assert answer is not None and answer["reason"] == "malformed"
        assert "decompresses to more than the 32 bytes" in answer["error"]
        assert health(address)["ok"] and agents["a"].process.poll() is None


def packed(shape: list[int], codec: str) -> dict[str, object]:
    """The descriptor of a compressed float32 tensor ``x``."""
    return {"name": "x", "dtype": "float32", "shape": shape, "codec": codec}


def test_a_token_is_required_off_loopback() -> None:
    with pytest.raises(InputError, match="token"):
        AgentSettings(name="edge", listen="0.0.0.0:7102")
    for empty in ("", "  "):
        with pytest.raises(InputError, match="token is empty"):
            AgentSettings(name="edge", listen="0.0.0.0:7102", token=empty)
        with pytest.raises(InputError, match="token is empty"):
            AgentSettings(name="edge", listen="127.0.0.1:7102", token=empty)
    AgentSettings(name="edge", listen="127.0.0.1:7102")
    AgentSettings(name="edge", listen="0.0.0.0:7102", token="t", allow_plaintext=True)


def test_a_padding_factor_below_one_is_refused() -> None:
    with pytest.raises(InputError, match="--padding-factor"):
        AgentSettings(name="edge", listen="127.0.0.1:7102", padding_factor=0.5)


def test_a_wrong_token_is_reported_as_refused_not_as_a_dead_agent(branchy) -> None:
    path, blocks = branchy
    with running_agents("a", args=("--token", "right")) as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, dict.fromkeys(blocks, "a"), infra)
        with pytest.raises(RemoteError, match="token refused by node 'a'") as control:
            connect(deployment, infra, token="wrong")
        assert control.value.peer == "a"
        with connect(deployment, infra, token="right"):
            pass  # deployed
        feeds = random_feeds(onnx.load(path))
        with (
            connect(deployment, infra, token="wrong", deploy=False) as s,
            pytest.raises(RemoteError, match="token refused by node 'a'") as data,
        ):
            s.infer(feeds)
        assert data.value.peer == "a"
