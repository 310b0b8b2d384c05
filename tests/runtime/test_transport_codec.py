"""Compressing and decompressing frames happens off the endpoint's event loop, and a compressed
message is never overtaken by a later one to the same peer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest

from qsplit.runtime import Message, _wire
from qsplit.runtime._transport import ZmqEndpoint
from qsplit.runtime._wire import SharedRef, decompresses, encode

GATE_S = 20.0
"""How long a gated codec waits for the loop to open it: only reached when the loop is blocked
(the test then fails on the gate, not on a hang)."""


def test_decompresses_tells_a_compressed_message_from_the_others() -> None:
    array = np.zeros(1024, np.float32)
    plain = encode(Message("tensors", tensors={"a": array}))
    packed = encode(Message("tensors", tensors={"a": array}, codecs={"a": "zstd"}))
    shared = encode(
        Message("tensors", tensors={"a": array, "b": array[:8]}, codecs={"b": "lz4"}),
        share=lambda a: SharedRef(3, 1) if a.size > 8 else None,
    )
    assert decompresses(packed)
    assert not decompresses(plain)
    assert not decompresses(shared)  # reads shared memory: decoded on the loop
    assert not decompresses([b"junk"])
    assert "codec" in str(msgpack.unpackb(bytes(shared[0])[4:])["frames"])


def gated(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> tuple[threading.Event, list[bool], Callable[[], None]]:
    """Replace ``_wire.<name>`` by one that waits until the loop opens the gate: it can only
    return ``True`` if the loop runs while the codec works."""
    gate, opened = threading.Event(), []
    original = getattr(_wire, name)

    def waiting(*args: Any) -> Any:
        opened.append(gate.wait(GATE_S))
        return original(*args)

    monkeypatch.setattr(_wire, name, waiting)
    return gate, opened, gate.set


async def pair() -> tuple[ZmqEndpoint, ZmqEndpoint, str]:
    server = await ZmqEndpoint.open(listen="127.0.0.1:0", shared_memory=False)
    client = await ZmqEndpoint.open(identity=b"client", shared_memory=False)
    assert server.address is not None
    return server, client, server.address


async def exchange(opener: Callable[[], None], sends: int) -> list[str]:
    """Send one compressed message then ``sends`` plain ones; open the gate from the loop;
    return the kinds in the order the server received them."""
    server, client, address = await pair()
    try:
        big = np.zeros(1 << 20, np.float32)
        sending = [
            asyncio.create_task(
                client.send(address, Message("big", tensors={"t": big}, codecs={"t": "lz4"}))
            )
        ]
        await asyncio.sleep(0)
        sending += [
            asyncio.create_task(client.send(address, Message(f"small{i}"))) for i in range(sends)
        ]
        await asyncio.sleep(0.05)
        opener()  # runs only if the loop is not stuck in the codec
        await asyncio.gather(*sending)
        received = [await asyncio.wait_for(server.recv(), GATE_S) for _ in range(sends + 1)]
        return [r.message.kind for r in received]  # type: ignore[union-attr]
    finally:
        await client.aclose()
        await server.aclose()


def test_compression_runs_off_the_loop_and_keeps_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    _, opened, opener = gated(monkeypatch, "compress")
    kinds = asyncio.run(exchange(opener, sends=3))
    assert opened == [True]
    assert kinds == ["big", "small0", "small1", "small2"]


def test_decompression_runs_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    _, opened, opener = gated(monkeypatch, "_decompress")
    kinds = asyncio.run(exchange(opener, sends=2))
    assert opened == [True]
    assert kinds == ["big", "small0", "small1"]
