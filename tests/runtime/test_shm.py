"""Shared memory between processes of one host: segments are reused only once released, a
reader refuses anything but a qsplit segment, and a shared tensor stays intact while any array
views it."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import synthetic
from agents import infra_for, running_agents
from conftest import session
from qsplit.model import analyze
from qsplit.runtime import Limits, Message, ProtocolError, build_deployment, connect
from qsplit.runtime._shm import AVAILABLE, CHUNK_BYTES, SegmentPool, SegmentReader
from qsplit.runtime._wire import SharedRef, decode, encode

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="shared memory needs Linux memfd")

ME = os.getpid()


def tensor(seed: int, shape: tuple[int, ...] = (256, 1024)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def read(reader: SegmentReader, ref: SharedRef, like: np.ndarray) -> np.ndarray:
    return reader.tensor(ME, ref, like.dtype.name, like.shape, lambda: None)


def test_a_segment_is_reused_only_after_its_receiver_releases_it() -> None:
    pool, reader = SegmentPool(), SegmentReader()
    try:
        first = pool.lend(tensor(0), ME)
        second = pool.lend(tensor(1), ME)
        assert first is not None and second is not None
        assert first.segment != second.segment
        np.testing.assert_array_equal(read(reader, first, tensor(0)), tensor(0))
        pool.release([first.segment], ME + 1)  # not the process it was lent to: ignored
        assert pool.lend(tensor(2), ME).segment not in (first.segment, second.segment)
        pool.release([first.segment], ME)
        again = pool.lend(tensor(3), ME)
        assert again == first
        np.testing.assert_array_equal(read(reader, again, tensor(3)), tensor(3))
    finally:
        pool.close()


def test_the_pool_gives_back_segments_that_sit_idle() -> None:
    pool = SegmentPool()
    try:
        lent = pool.lend(tensor(0), ME)
        idle = pool.lend(tensor(1), ME)
        pool.release([idle.segment], ME)
        assert pool.trim(idle_s=3600) == 0  # used just now: kept for reuse
        before = pool.pooled_bytes
        assert pool.trim(idle_s=0) == before // 2  # the free one goes, the lent one stays
        assert pool.pooled_bytes == before // 2
        pool.release([lent.segment], ME)
        pool.trim(idle_s=0)
        assert pool.pooled_bytes == 0
    finally:
        pool.close()


def test_a_tensor_computed_into_a_segment_is_lent_without_a_copy() -> None:
    pool, reader = SegmentPool(), SegmentReader()
    unheld: list[int] = []
    try:
        buffer = pool.buffer((256, 1024), np.dtype(np.float32), unheld.append)
        assert buffer is not None and buffer.flags.writeable
        buffer[...] = tensor(0)
        ref = pool.lend(buffer, ME)
        assert ref is not None
        assert pool.lend(buffer, ME + 1) == ref  # a second receiver shares the same segment
        np.testing.assert_array_equal(read(reader, ref, buffer), tensor(0))
        pool.release([ref.segment], ME)
        pool.release([ref.segment], ME + 1)
        assert pool.lend(tensor(1), ME).segment != ref.segment  # still held by ``buffer``
        del buffer
        gc.collect()
        assert unheld == [ref.segment]
        pool.unhold(ref.segment)
        assert pool.lend(tensor(2), ME) == ref  # neither held nor lent: reused
    finally:
        pool.close()


def test_the_pool_stays_within_its_budget_and_reclaims_from_exited_processes() -> None:
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = int(exited.stdout)
    pool = SegmentPool(max_bytes=2 * CHUNK_BYTES)
    big = np.zeros(CHUNK_BYTES // 4 + 1, np.float32)  # needs two chunks
    try:
        assert pool.lend(big, ME) is not None
        assert pool.lend(tensor(0), ME) is None  # over budget: the caller falls back to frames
        assert pool.pooled_bytes == 2 * CHUNK_BYTES
        pool = SegmentPool(max_bytes=2 * CHUNK_BYTES)
        assert pool.lend(big, gone) is not None
        assert pool.lend(big, ME) is not None  # the exited process's segment is taken back
    finally:
        pool.close()


def test_a_reader_refuses_what_is_not_that_segment(tmp_path: Path) -> None:
    pool, reader = SegmentPool(), SegmentReader()
    ref = pool.lend(tensor(0), ME)
    assert ref is not None
    with open(tmp_path / "plain", "wb") as plain:
        plain.write(b"\0" * 4096)
        plain.flush()
        for wrong in (SharedRef(plain.fileno(), ref.segment), SharedRef(ref.fd, ref.segment + 1)):
            with pytest.raises(ValueError):
                reader.view(ME, wrong, 16)
            assert not reader.can_read(ME, wrong)
    with pytest.raises(ValueError, match="holds"):
        reader.view(ME, ref, 2 * CHUNK_BYTES)
    with pytest.raises(OSError):
        reader.view(ME, SharedRef(10_000, 12345), 16)
    assert reader.can_read(ME, pool.probe)
    pool.close()


def test_a_shared_tensor_is_released_when_no_array_views_it() -> None:
    pool, reader = SegmentPool(), SegmentReader()
    ref = pool.lend(tensor(0), ME)
    assert ref is not None
    released: list[int] = []
    shared = reader.tensor(ME, ref, "float32", (256, 1024), lambda: released.append(1))
    assert type(shared) is np.ndarray and not shared.flags.writeable
    views = [shared[::2, 3:], shared.reshape(-1), np.asarray(shared).T]
    del shared
    gc.collect()
    assert not released
    np.testing.assert_array_equal(views[1], tensor(0).reshape(-1))
    del views
    gc.collect()
    assert released == [1]
    pool.close()


def test_the_wire_carries_a_reference_instead_of_a_frame() -> None:
    pool, reader = SegmentPool(), SegmentReader()
    big, small = tensor(0), np.arange(4, dtype=np.int64)
    message = Message("tensors", {"req": "1"}, {"big": big, "small": small})
    frames = encode(message, share=lambda a: pool.lend(a, ME) if a.nbytes > 1024 else None)
    assert len(frames) == 2  # the header and the small tensor's frame

    def resolve(ref: SharedRef, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        return reader.tensor(ME, ref, dtype, shape, lambda: None)

    received = [bytes(f) for f in frames]
    decoded = decode(received, resolve=resolve)
    np.testing.assert_array_equal(decoded.tensors["big"], big)
    np.testing.assert_array_equal(decoded.tensors["small"], small)
    with pytest.raises(ProtocolError, match="shares none") as caught:
        decode(received)  # a peer that never proved it shares this host
    assert caught.value.reason == "malformed"
    with pytest.raises(ProtocolError) as caught:
        decode(received, resolve=resolve, limits=Limits(max_message_bytes=big.nbytes // 2))
    assert caught.value.reason == "oversized"

    def unreadable(ref: SharedRef, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        raise OSError("no such file")

    with pytest.raises(ProtocolError, match="not readable"):
        decode(received, resolve=unreadable)
    pool.close()


@pytest.mark.parametrize("where", [[1], [1, True], [-1, 2], "x", [1, 2.5]])
def test_a_bad_shared_reference_is_malformed(where: object) -> None:
    import msgpack

    from qsplit.runtime._wire import MAGIC, VERSION

    descriptor = {"name": "x", "dtype": "float32", "shape": [4], "shm": where}
    header = {"kind": "tensors", "body": {}, "frames": [descriptor]}
    frames = [MAGIC + bytes([VERSION]) + msgpack.packb(header)]
    with pytest.raises(ProtocolError) as caught:
        decode(frames, resolve=lambda ref, dtype, shape: np.zeros(shape, dtype))
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize("shared_memory", [True, False])
def test_agents_on_one_host_exchange_tensors_in_shared_memory(
    tmp_path: Path, shared_memory: bool
) -> None:
    shape = (1, 3, 320, 320)  # 1.2 MB per tensor
    path = synthetic.save(synthetic.relay(shape), tmp_path / "relay.onnx")
    blocks = analyze(str(path))[1].block_names
    args = () if shared_memory else ("--no-shared-memory",)
    with running_agents("a", "b", args=args) as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, dict(zip(blocks, ("a", "b"), strict=True)), infra)
        model = onnx.load(path)
        with connect(deployment, infra) as s:
            s.infer({"x": tensor(9, shape)})  # warm-up: connections finish their handshakes
            kept = []
            for seed in range(6):  # more requests than segments needed: segments are reused
                feeds = {"x": tensor(seed, shape)}
                kept.append((feeds, s.infer(feeds)["out"]))
            for feeds, output in kept:  # earlier outputs untouched by later requests
                (expected,) = session(model).run(None, feeds)
                np.testing.assert_array_equal(output, expected)
            shared = {n: stats["shared_tensors"] for n, stats in s.stats().items()}
    if shared_memory:  # client → a, a → b and b → client: each received the 6 requests' tensors
        assert shared["a"]["received"] >= 6 and shared["a"]["sent"] >= 6
        assert shared["b"]["received"] >= 6 and shared["b"]["sent"] >= 6
    else:
        assert shared == {"a": {}, "b": {}}
