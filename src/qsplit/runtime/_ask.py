"""One control request to one agent, outside any session: profiling, health from outside
(``qsplit testbed status`` tells a deaf agent from a dead one with it), and the testbed's
``slowdown``."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from qsplit.runtime._keys import CurveKeys
from qsplit.runtime._transport import Received, ZmqEndpoint
from qsplit.runtime._wire import Message

_ids = itertools.count()


async def ask(
    endpoint: ZmqEndpoint,
    address: str,
    kind: str,
    body: dict[str, Any],
    blobs: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Send ``kind`` to the agent at ``address`` and return the body of its reply (the caller
    bounds the wait); other messages arriving meanwhile are ignored."""
    cid = next(_ids)
    await endpoint.send(address, Message(kind, {**body, "cid": cid}, blobs=blobs or {}))
    while True:
        received = await endpoint.recv()
        if (
            isinstance(received, Received)
            and received.message.kind == "reply"
            and received.message.body.get("cid") == cid
        ):
            return dict(received.message.body)


async def open_asking(
    address: str, node: str, token: str | None, curve: CurveKeys | None, timeout_s: float
) -> ZmqEndpoint:
    """An endpoint to ask the agent of ``node`` at ``address``: over CURVE with ``curve`` (the
    requester's keys and the nodes' public keys), which an agent started with a key demands."""
    endpoint = await ZmqEndpoint.open(token=token, send_timeout_s=timeout_s, curve=curve)
    endpoint.identify(address, node)
    return endpoint


def health_of(
    address: str,
    *,
    token: str | None = None,
    timeout_s: float = 2.0,
    node: str = "",
    curve: CurveKeys | None = None,
) -> dict | None:
    """The ``health`` answer of the agent (of ``node``, needed with ``curve``) at ``address``,
    or ``None`` if none came in ``timeout_s``; :class:`TransportError` if the agent refused
    the handshake (it speaks CURVE and ``curve`` is missing or not admitted)."""
    return _ask_once(address, "health", {}, token, timeout_s, node, curve)


def slow_down(
    address: str,
    factor: float,
    *,
    token: str | None = None,
    timeout_s: float = 2.0,
    node: str = "",
    curve: CurveKeys | None = None,
) -> dict | None:
    """Tell the agent at ``address`` to run every component ``factor`` (≥ 1) times slower than
    it would from now on (1: back to normal); its answer, or ``None`` if none came in
    ``timeout_s``. The testbed plays a node that got busy with it."""
    return _ask_once(address, "slowdown", {"factor": factor}, token, timeout_s, node, curve)


def _ask_once(
    address: str,
    kind: str,
    body: dict[str, Any],
    token: str | None,
    timeout_s: float,
    node: str,
    curve: CurveKeys | None,
) -> dict | None:
    async def exchange() -> dict[str, Any] | None:
        endpoint = await open_asking(address, node, token, curve, timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                return await ask(endpoint, address, kind, body)
        except TimeoutError:
            return None
        finally:
            await endpoint.aclose()

    return asyncio.run(exchange())
