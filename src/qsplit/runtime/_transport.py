"""The transport boundary: an :class:`Endpoint` sends and receives :class:`Message` values.

Agents and the client only see this interface, so the zmq implementation can be swapped for the
in-process one in fast tests (the habit of httpx's pluggable transports). zmq is imported only
here.

Topology (zmq): every agent binds one ROUTER socket at its ``host:port``; whoever talks to it
(another agent, the client) connects a DEALER. Replies and results go back through the ROUTER to
the sender's routing id, so the client needs no listening port. A client uses the same routing
id on all its connections, which lets any agent return final outputs to it directly.

Liveness: every outgoing connection is watched with a zmq socket monitor, so a peer whose
process dies is reported at once (the kernel closes its sockets). A peer *machine* that
vanishes (powered off, cable cut) is found by the kernel's TCP keepalive while the connection is
idle (:data:`KEEPALIVE_IDLE_S` + :data:`KEEPALIVE_COUNT` × :data:`KEEPALIVE_INTERVAL_S`) and
by the retransmission limit :data:`MAX_RETRANSMIT_MS` while data is unacknowledged. Not zmq's
own heartbeats: their PING queues behind the data already sent on the connection, so a message
that takes longer than the timeout on a slow link (a 1.6 MB tensor at 0.5 MB/s, a 21 MB
deploy at 5 MB/s) dropped a live, busy connection, and the message with it. A frozen process
keeps its connections (its kernel still answers); requests waiting on it fail at their deadline
naming it, and it serves again once resumed.

Shared memory: when both ends of a connection run on one host, large tensors cross in the
sender's shared-memory segments (:mod:`qsplit.runtime._shm`) instead of TCP frames. It is
never assumed, always proven, in a handshake run on every (re)connection:

1. the connecting side sends ``shm.hello`` with its pid and a probe segment;
2. the listening side opens that probe; ``shm.welcome`` answers whether it could, with its own
   pid and probe (from here it reads the connector's segments, and the connector may lend it);
3. the connector opens that probe and, if it could, sends ``shm.ready`` (the listener may now
   lend it too).

The receiver reads a shared tensor in place; once no array views it any more it sends
``shm.release`` back the way it came, which frees the segment for reuse. An endpoint opened
with ``shared_memory=False`` declines every hello, so one side is enough to keep a connection
on TCP (the testbed does this, so that its emulated links carry every byte). These four
kinds never reach :meth:`Endpoint.recv`.

Encryption (CURVE): an endpoint given :class:`~qsplit.runtime._keys.CurveKeys` makes its
listening socket a CURVE server, which admits only the clients whose public key the keys list
(a ZAP handler asks :class:`_AllowedKeys`), and connects to every peer as a CURVE client with
that peer's public key, so each connection is authenticated both ways and encrypted. A peer
refusing the handshake (an unknown key, a peer without CURVE) fails the sends to it with the
reason rather than leaving them waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import parse_monitor_message

from qsplit.runtime import _shm
from qsplit.runtime._log import event, watch
from qsplit.runtime._wire import (
    Limits,
    Message,
    Resolve,
    SharedRef,
    decode,
    decompresses,
    encode,
    header_fields,
)
from qsplit.runtime.errors import PeerTimeout, ProtocolError, TransportError

if TYPE_CHECKING:
    from qsplit.runtime._keys import CurveKeys

KEEPALIVE_IDLE_S = 2
"""Seconds a connection is idle before the kernel starts probing the peer's machine."""
KEEPALIVE_INTERVAL_S = 1
KEEPALIVE_COUNT = 3
"""Unanswered probes after which the connection counts as dropped."""
MAX_RETRANSMIT_MS = 15_000
"""Data unacknowledged this long (the peer's machine stopped acknowledging) drops the
connection; a slow but live link keeps acknowledging, however long the message."""

Peer = str | bytes
"""A connection: the address of an outgoing one, or the routing id of an incoming one."""
PeerListener = Callable[[str, bool], None]
"""Called as ``listener(address, connected)`` when a connection to a peer comes up, drops, or
fails to come back (each failed reconnection attempt or refused handshake reports ``False``
again)."""
_HANDSHAKE_FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "it refused this side's CURVE key",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the security handshake failed (one side uses CURVE, "
    "the other not, or the peer's public key is wrong)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the security handshake failed",
}
"""Monitor events of a connection whose handshake failed, with what they mean."""


def curve_keypair() -> tuple[str, str]:
    """A new CURVE (public, secret) key pair, in Z85."""
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


def curve_public(secret_key: str) -> str:
    """The public key (Z85) of a CURVE secret key."""
    return zmq.curve_public(secret_key.encode()).decode()


class _AllowedKeys:
    """The ZAP policy of a CURVE server: admit the listed public keys, log the others."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key.decode() in self._keys
        if not allowed:
            event(logging.WARNING, "handshake.refused", key=key.decode(), reason="unknown key")
        return allowed


@dataclass(frozen=True)
class Received:
    """A message with where it came from."""

    message: Message
    route: bytes | None
    """Routing id to :meth:`Endpoint.reply` to, for messages that arrived on the listening
    socket; ``None`` for replies arriving on an outgoing connection."""
    peer: str | None
    """Address of the outgoing connection it arrived on, if any."""


@dataclass(frozen=True)
class Rejected:
    """A message that failed the wire checks (already counted in :attr:`Endpoint.rejected`),
    passed on so that its receiver can log it and answer a request it could identify."""

    error: ProtocolError
    route: bytes | None
    peer: str | None
    kind: str | None
    """The header's ``kind``, when the header could be read at all."""
    body: Mapping[str, Any]
    """The header's ``body`` as sent (unchecked), or empty: its ``cid`` lets a rejected control
    request be answered, its ``reply_to`` a rejected data message's requester be told."""


class Endpoint(ABC):
    """One participant's view of the network."""

    rejected: Counter[str]
    """Rejected incoming messages by reason (see :data:`qsplit.runtime._wire.REASONS`)."""
    shared: Counter[str]
    """Tensors ``sent`` and ``received`` through shared memory rather than in frames."""
    compressed: Counter[str]
    """Bytes of the tensor frames sent compressed, per codec, before (``<codec>_raw_bytes``)
    and after (``<codec>_wire_bytes``) compression."""

    @abstractmethod
    async def recv(self) -> Received | Rejected:
        """The next message, or the next rejected one (counted in :attr:`rejected`)."""

    @abstractmethod
    async def send(self, address: str, message: Message) -> None:
        """Send to the agent at ``address``; :class:`PeerTimeout` if it cannot take it in time."""

    @abstractmethod
    def shared_buffer(
        self, peers: Sequence[Peer], shape: tuple[int, ...], dtype: np.dtype
    ) -> np.ndarray | None:
        """A writable array to compute a tensor for ``peers`` into, which :meth:`send` and
        :meth:`reply` then hand over without copying; ``None`` where that would not pay (no
        peer on this host, a small tensor, the memory budget spent)."""

    @abstractmethod
    def connect(self, address: str) -> None:
        """Open the connection to ``address`` now rather than on the first send;
        :class:`TransportError` for an address that cannot be connected to."""

    @abstractmethod
    async def reply(self, route: bytes, message: Message) -> None:
        """Send back to a connected peer by routing id; :class:`TransportError` if it is gone."""

    @abstractmethod
    def identify(self, address: str, node: str) -> None:
        """Record that ``node``'s agent is reached at ``address``, before connecting there: an
        authenticated transport checks that it is that node."""

    @abstractmethod
    def watch_peers(self, listener: PeerListener) -> None:
        """Report to ``listener`` every time an outgoing connection comes up, goes down or fails
        a reconnection attempt."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop receiving and release the sockets."""


def zmq_url(address: str) -> str:
    """``host:port`` (the infra file's form) as a zmq TCP endpoint."""
    return address if "://" in address else f"tcp://{address}"


def check_address(address: Any) -> str:
    """``address`` if it is a ``host:port`` a peer may name (a deploy's peers, a relay's next
    hop); :class:`ValueError` otherwise, before zmq sees it."""
    if not isinstance(address, str):
        raise ValueError(f"address {address!r} is not a string")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r} is not HOST:PORT")
    if any(c.isspace() for c in host) or "/" in host:
        raise ValueError(f"address {address!r} has a bad host name")
    return address


class ZmqEndpoint(Endpoint):
    """zmq over TCP: multipart frames sent and received without copying tensor buffers.

    Create with :meth:`open` inside the event loop that will use it.
    """

    def __init__(
        self,
        *,
        identity: bytes | None,
        token: str | None,
        limits: Limits,
        send_timeout_s: float,
        shared_memory: bool,
        curve: CurveKeys | None,
    ) -> None:
        self._context = zmq.asyncio.Context()
        self._curve = curve
        self._auth: AsyncioAuthenticator | None = None
        self._nodes_at: dict[str, str] = {}
        """Address → the node whose agent listens there (for its CURVE public key)."""
        self._refused: dict[str, str] = {}
        """Addresses whose last handshake failed, with why (cleared by a successful one)."""
        self._refusals: dict[str, asyncio.Future[None]] = {}
        """Per address: resolved at its next failed handshake (wakes the sends waiting)."""
        self._loop = asyncio.get_running_loop()
        self._identity = identity
        self._token = token
        self._limits = limits
        self._send_timeout_s = send_timeout_s
        self._queue: asyncio.Queue[Received | Rejected] = asyncio.Queue()
        self._dealers: dict[str, zmq.asyncio.Socket] = {}
        self._monitors: list[zmq.asyncio.Socket] = []
        self._router: zmq.asyncio.Socket | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._listeners: list[PeerListener] = []
        self._posts: set[asyncio.Task[None]] = set()
        self._closed = False
        self._pool = _shm.SegmentPool() if shared_memory and _shm.AVAILABLE else None
        self._reader = _shm.SegmentReader()
        self._codec = ThreadPoolExecutor(1, thread_name_prefix="codec")
        """Compressing and decompressing frames (lz4/zstd of a 6 MB tensor takes tens of ms):
        off the event loop, so the other connections and timers do not wait for it. One
        thread: encodes finish in the order they were asked for."""
        self._sending: dict[Peer, asyncio.Lock] = {}
        """Per peer: held from encoding a message until zmq has queued it, so a message
        compressed in :attr:`_codec` is not overtaken by a later one sent at once."""
        self._lend_to: dict[Peer, int] = {}
        """Peers proven to read this process's segments, with their pid."""
        self._read_from: dict[Peer, int] = {}
        """Peers whose segments this process has proven it can read, with their pid."""
        self.rejected = Counter()
        self.shared = Counter()
        self.compressed = Counter()
        self.address: str | None = None
        """The bound ``host:port`` when listening (resolves port 0)."""

    @classmethod
    async def open(
        cls,
        *,
        listen: str | None = None,
        identity: bytes | None = None,
        token: str | None = None,
        limits: Limits | None = None,
        send_timeout_s: float = 5.0,
        shared_memory: bool = True,
        curve: CurveKeys | None = None,
    ) -> ZmqEndpoint:
        """An endpoint that listens on ``listen`` (``host:port``, port 0 = any) if given, uses
        shared memory with peers on this host unless ``shared_memory=False``, and speaks only
        CURVE when given ``curve`` keys."""
        endpoint = cls(
            identity=identity,
            token=token,
            limits=limits or Limits(),
            send_timeout_s=send_timeout_s,
            shared_memory=shared_memory,
            curve=curve,
        )
        if listen is not None:
            router = endpoint._socket(zmq.ROUTER)
            if curve is not None:
                endpoint._serve_curve(router, curve)
            router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            # A session reconnecting (after this process was frozen, or its connection dropped)
            # comes back with the same routing id while the old connection may not be closed
            # yet here: the new connection must take the id over, else every reply to the
            # session goes to the dead one and it never recovers.
            router.setsockopt(zmq.ROUTER_HANDOVER, 1)
            host, _, port = listen.rpartition(":")
            url = zmq_url(f"{host}:{'*' if port == '0' else port}")
            try:
                if port == "0":
                    bound = router.bind_to_random_port(zmq_url(host))
                    endpoint.address = f"{host}:{bound}"
                else:
                    router.bind(url)
                    endpoint.address = listen
            except zmq.ZMQError as exc:
                router.close(linger=0)
                raise TransportError(f"cannot listen on {listen}: {exc}", peer=listen) from None
            endpoint._router = router
            endpoint._start(endpoint._read(router, None), f"receive {listen}")
        if endpoint._pool is not None:
            endpoint._start(endpoint._trim(endpoint._pool), "trim shared memory")
        return endpoint

    def _serve_curve(self, router: zmq.asyncio.Socket, curve: CurveKeys) -> None:
        """Make ``router`` a CURVE server admitting only ``curve.clients`` (set before it binds:
        the mechanism is fixed per connection)."""
        self._auth = AsyncioAuthenticator(self._context)
        self._auth.start()
        self._auth.configure_curve_callback("*", _AllowedKeys(curve.clients))
        router.curve_secretkey = curve.secret_key.encode()
        router.curve_publickey = curve.public_key.encode()
        router.curve_server = True

    def identify(self, address: str, node: str) -> None:
        # With CURVE, a connection to ``address`` expects ``node``'s public key.
        self._nodes_at[address] = node

    def _connect_curve(self, socket: zmq.asyncio.Socket, address: str) -> None:
        """Make ``socket`` a CURVE client of the agent at ``address``; :class:`TransportError`
        when the infrastructure gives that node no public key."""
        assert self._curve is not None
        node = self._nodes_at.get(address)
        server_key = self._curve.servers.get(node) if node is not None else None
        if server_key is None:
            raise TransportError(
                f"no CURVE public key for the agent at {address} (node {node!r}): give the "
                "node a curve_public_key in the infrastructure file",
                peer=node or address,
            )
        socket.curve_secretkey = self._curve.secret_key.encode()
        socket.curve_publickey = self._curve.public_key.encode()
        socket.curve_serverkey = server_key.encode()

    async def _trim(self, pool: _shm.SegmentPool) -> None:
        """Shrink the shared-memory pool once its segments sit idle (after a burst)."""
        while True:
            await asyncio.sleep(_shm.POOL_IDLE_S / 2)
            pool.trim(_shm.POOL_IDLE_S)

    def _start(self, loop: Awaitable[None], what: str) -> None:
        """Run one of the endpoint's receive or watch loops; each handles every frame inside
        its own boundary, and a loop that dies all the same is logged (see :func:`watch`)."""
        task = asyncio.ensure_future(loop)
        watch(task, what)
        self._readers.append(task)

    def _socket(self, kind: int) -> zmq.asyncio.Socket:
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, self._limits.max_message_bytes)
        return socket

    def _dealer(self, address: str) -> zmq.asyncio.Socket:
        socket = self._dealers.get(address)
        if socket is None:
            socket = self._socket(zmq.DEALER)
            if self._identity is not None:
                socket.setsockopt(zmq.ROUTING_ID, self._identity)
            # Queue only on live connections: a send to a dead agent then waits (and times
            # out, naming it) instead of piling up in a buffer nobody will drain.
            socket.setsockopt(zmq.IMMEDIATE, 1)
            socket.setsockopt(zmq.TCP_KEEPALIVE, 1)
            socket.setsockopt(zmq.TCP_KEEPALIVE_IDLE, KEEPALIVE_IDLE_S)
            socket.setsockopt(zmq.TCP_KEEPALIVE_INTVL, KEEPALIVE_INTERVAL_S)
            socket.setsockopt(zmq.TCP_KEEPALIVE_CNT, KEEPALIVE_COUNT)
            socket.setsockopt(zmq.TCP_MAXRT, MAX_RETRANSMIT_MS)
            if self._curve is not None:
                try:
                    self._connect_curve(socket, address)
                except TransportError:
                    socket.close(linger=0)
                    raise
            events = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
            for kind in (zmq.EVENT_CONNECT_RETRIED, *_HANDSHAKE_FAILED):
                events |= kind
            monitor = socket.get_monitor_socket(events)
            self._monitors.append(monitor)
            try:
                socket.connect(zmq_url(address))
            except zmq.ZMQError as exc:
                socket.disable_monitor()
                self._monitors.remove(monitor)
                monitor.close(linger=0)
                socket.close(linger=0)
                raise TransportError(
                    f"cannot connect to {address!r} ({exc}): expected HOST:PORT", peer=address
                ) from None
            self._dealers[address] = socket
            self._start(self._read(socket, address), f"receive from {address}")
            self._start(self._watch(monitor, address), f"watch {address}")
        return socket

    def watch_peers(self, listener: PeerListener) -> None:
        self._listeners.append(listener)

    async def _watch(self, monitor: zmq.asyncio.Socket, address: str) -> None:
        while True:
            frames = await monitor.recv_multipart()
            try:
                self._connection_event(address, parse_monitor_message(frames)["event"])
            except Exception as exc:  # a listener's bug must not stop the watch
                event(logging.ERROR, "watch.failed", peer=address, error=repr(exc))

    def _connection_event(self, address: str, kind: int) -> None:
        connected = kind == zmq.EVENT_HANDSHAKE_SUCCEEDED
        if connected:
            self._refused.pop(address, None)
        elif kind in _HANDSHAKE_FAILED:
            if address not in self._refused:
                event(
                    logging.WARNING,
                    "handshake.failed",
                    peer=address,
                    reason=_HANDSHAKE_FAILED[kind],
                )
            self._refused[address] = _HANDSHAKE_FAILED[kind]
            refusal = self._refusals.pop(address, None)
            if refusal is not None and not refusal.done():
                refusal.set_result(None)
        if connected and self._pool is not None:
            self._post(address, Message("shm.hello", self._introduction()))
        elif kind == zmq.EVENT_DISCONNECTED:
            self._lend_to.pop(address, None)
            self._read_from.pop(address, None)
        for listener in self._listeners:
            listener(address, connected)

    def connect(self, address: str) -> None:
        """Open the connection to ``address`` ahead of the first send (replies need it)."""
        self._dealer(address)

    async def _read(self, socket: zmq.asyncio.Socket, peer: str | None) -> None:
        while True:
            frames = await socket.recv_multipart(copy=False)
            route = None
            if peer is None:
                route, frames = frames[0].bytes, frames[1:]
            key: Peer = peer if route is None else route  # type: ignore[assignment]
            try:
                if decompresses(frames):
                    item = await self._loop.run_in_executor(
                        self._codec, self._take, key, frames, route, peer
                    )
                else:
                    item = self._take(key, frames, route, peer)
            except ProtocolError as exc:
                item = Rejected(exc, route, peer, *header_fields(frames))
            if isinstance(item, Rejected):
                self.rejected[item.error.reason] += 1
            if item is not None:
                self._queue.put_nowait(item)

    def _take(
        self, key: Peer, frames: Sequence[Any], route: bytes | None, peer: str | None
    ) -> Received | None:
        """Decode one message; shared-memory control is handled here (``None``: nothing for
        the receiver). Every failure is a :class:`ProtocolError`: a control message with bad
        fields is as malformed as a bad frame."""
        message = decode(frames, token=self._token, limits=self._limits, resolve=self._resolve(key))
        if not message.kind.startswith("shm."):
            return Received(message, route, peer)
        try:
            self._shared_memory_control(key, message)
        except Exception as exc:
            raise ProtocolError("malformed", f"{message.kind}: {exc!r}") from None
        return None

    # -- shared memory ---------------------------------------------------------------------

    def _introduction(self) -> dict[str, int]:
        assert self._pool is not None
        probe = self._pool.probe
        return {"pid": os.getpid(), "fd": probe.fd, "segment": probe.segment}

    def _can_read(self, body: Mapping[str, Any]) -> int | None:
        """The pid of the peer introduced in ``body`` if its probe segment opens from here."""
        pid, probe = _count(body["pid"]), SharedRef(_count(body["fd"]), _count(body["segment"]))
        return pid if self._reader.can_read(pid, probe) else None

    def _shared_memory_control(self, key: Peer, message: Message) -> None:
        """One step of the shared-memory handshake (see the module docstring), or a release."""
        body = message.body
        if message.kind == "shm.release":
            if self._pool is not None and key in self._lend_to:
                self._pool.release(list(map(_count, body["segments"])), self._lend_to[key])
        elif message.kind == "shm.hello":
            pid = self._can_read(body) if self._pool is not None else None
            answer: dict[str, Any] = {"readable": pid is not None}
            if pid is not None:
                self._read_from[key] = pid
                answer.update(self._introduction())
            self._post(key, Message("shm.welcome", answer))
        elif message.kind == "shm.welcome":
            if body["readable"] is True and self._pool is not None:
                self._lend_to[key] = _count(body["pid"])
                pid = self._can_read(body)
                if pid is not None:
                    self._read_from[key] = pid
                    self._post(key, Message("shm.ready", {}))
        elif message.kind == "shm.ready":
            if key in self._read_from:
                self._lend_to[key] = self._read_from[key]
        else:
            raise ValueError(f"unknown message kind {message.kind!r}")

    def shared_buffer(
        self, peers: Sequence[Peer], shape: tuple[int, ...], dtype: np.dtype
    ) -> np.ndarray | None:
        pool = self._pool
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if pool is None or nbytes < _shm.MIN_SHARED_BYTES:
            return None
        if not any(peer in self._lend_to for peer in peers):
            return None
        return pool.buffer(shape, dtype, functools.partial(self._soon, pool.unhold))

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on this endpoint's loop, from any thread: a shared array's
        finalizer runs on whichever thread drops its last reference. Once the loop is closed
        there is nobody left to tell, and nothing is done."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _resolve(self, key: Peer) -> Resolve | None:
        """How to read tensors ``key`` put in shared memory; ``None`` when ``key`` has not
        shown it shares this host."""
        pid = self._read_from.get(key)
        if pid is None:
            return None

        def resolve(ref: SharedRef, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
            release = Message("shm.release", {"segments": [ref.segment]})
            on_free = functools.partial(self._soon, self._post, key, release)
            tensor = self._reader.tensor(pid, ref, dtype, shape, on_free)
            self.shared["received"] += 1
            return tensor

        return resolve

    @contextlib.asynccontextmanager
    async def _queue_for(
        self, key: Peer, message: Message
    ) -> AsyncIterator[tuple[list[Any], Callable[[], None]]]:
        """Frames for ``message`` to ``key`` (see :meth:`_encode`), while no other message to
        ``key`` can be queued: the caller hands them to zmq before leaving the block. A
        message with frames to compress over TCP is encoded in :attr:`_codec`."""
        lock = self._sending.setdefault(key, asyncio.Lock())
        async with lock:
            if message.codecs and key not in self._lend_to:
                yield await self._loop.run_in_executor(self._codec, self._encode, key, message)
            else:
                yield self._encode(key, message)

    def _encode(self, key: Peer, message: Message) -> tuple[list[Any], Callable[[], None]]:
        """Frames for ``message`` to ``key``, with large tensors lent in shared memory when
        ``key`` reads it, and what takes the loans back if the message is never sent."""
        pid = self._lend_to.get(key)
        pool = self._pool
        if pool is None or pid is None:
            return encode(message, self._token, counts=self.compressed), lambda: None
        lent: list[int] = []

        def share(array: np.ndarray) -> SharedRef | None:
            if array.nbytes < _shm.MIN_SHARED_BYTES:
                return None
            ref = pool.lend(array, pid)
            if ref is not None:
                lent.append(ref.segment)
                self.shared["sent"] += 1
            return ref

        frames = encode(message, self._token, share, self.compressed)
        return frames, lambda: pool.release(lent, pid)

    def _post(self, key: Peer, message: Message) -> None:
        """Send a shared-memory control message without waiting; if it cannot go, the
        handshake simply does not complete (TCP carries on) or a segment stays lent."""
        if self._closed:
            return
        frames = encode(message, self._token)
        if isinstance(key, bytes):
            if self._router is None:
                return
            sending = self._router.send_multipart([key, *frames])
        else:
            sending = self._dealer(key).send_multipart(frames)
        task = asyncio.ensure_future(self._quietly(sending))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _quietly(self, sending: Awaitable[Any]) -> None:
        with contextlib.suppress(zmq.ZMQError, TimeoutError):
            await asyncio.wait_for(sending, self._send_timeout_s)

    async def recv(self) -> Received | Rejected:
        return await self._queue.get()

    async def send(self, address: str, message: Message) -> None:
        async with self._queue_for(address, message) as (frames, unlend):
            sending = self._dealer(address).send_multipart(frames, copy=False)
        try:
            if sending.done():  # the usual case, sent at once: no timer, no extra loop turn
                sending.result()
            else:
                await self._sent(address, sending)
        except TimeoutError:
            unlend()
            refused = self._refused.get(address)
            if refused is not None:
                raise TransportError(
                    f"agent at {address} refused the connection: {refused}. Check that both "
                    "sides use the keys of the infrastructure file (docs/runtime.md, Security)",
                    peer=address,
                ) from None
            raise PeerTimeout(
                f"agent at {address} did not accept a message within {self._send_timeout_s} s",
                peer=address,
            ) from None

    async def _sent(self, address: str, sending: asyncio.Future[Any]) -> None:
        """Wait until zmq takes ``sending``; :class:`TimeoutError` after the send timeout, or
        at once when the peer refuses (or refused) the handshake: nothing would ever go."""
        try:
            if address not in self._refused:
                refusal = self._refusals.get(address)
                if refusal is None or refusal.done():
                    refusal = self._refusals[address] = self._loop.create_future()
                await asyncio.wait(
                    {sending, refusal},
                    timeout=self._send_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            if not sending.done():
                sending.cancel()
        if not sending.done() or sending.cancelled():
            raise TimeoutError
        sending.result()

    async def reply(self, route: bytes, message: Message) -> None:
        if self._router is None:
            raise TransportError("this endpoint does not listen, it cannot reply")
        async with self._queue_for(route, message) as (frames, unlend):
            try:
                await self._router.send_multipart([route, *frames], copy=False)
            except zmq.ZMQError as exc:
                unlend()
                raise TransportError(f"peer {route!r} is no longer connected ({exc})") from None

    async def aclose(self) -> None:
        self._closed = True
        tasks = [*self._readers, *self._posts]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for dealer in self._dealers.values():
            dealer.disable_monitor()
        sockets = [
            *self._monitors,
            *self._dealers.values(),
            *([self._router] if self._router else []),
        ]
        for socket in sockets:
            socket.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._context.term()
        self._reader.close()
        if self._pool is not None:
            self._pool.close()
        self._codec.shutdown(wait=False, cancel_futures=True)


def _count(value: Any) -> int:
    """A non-negative integer field of a control message (a pid, fd or segment id)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError(f"{value!r} is not a non-negative 64-bit integer")
    return value
