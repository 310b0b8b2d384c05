"""The transport boundary: an :class:`Endpoint` sends and receives :class:`Message` values.

Agents and the client only see this interface, so the zmq implementation can be swapped for the
in-process one in fast tests (the habit of httpx's pluggable transports). zmq is imported only
here.

Topology (zmq): every agent binds one ROUTER socket at its ``host:port``; whoever talks to it
(another agent, the client) connects a DEALER. Replies and results go back through the ROUTER to
the sender's routing id, so the client needs no listening port. A client uses the same routing
id on all its connections, which lets any agent return final outputs to it directly.

Liveness: every outgoing connection is watched with a zmq socket monitor, so a peer whose
process dies is reported at once (the kernel closes its sockets), and zmq heartbeats turn a
peer that stops answering (a frozen process, a dead machine) into a disconnect within
:data:`HEARTBEAT_TIMEOUT_MS`.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from qsplit.runtime._wire import Limits, Message, decode, encode
from qsplit.runtime.errors import PeerTimeout, ProtocolError, TransportError

HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000
"""A connected peer that answers no heartbeat for this long counts as disconnected."""

PeerListener = Callable[[str, bool], None]
"""Called as ``listener(address, connected)`` when a connection to a peer comes up, drops, or
fails to come back (each failed reconnection attempt reports ``False`` again)."""


@dataclass(frozen=True)
class Received:
    """A message with where it came from."""

    message: Message
    route: bytes | None
    """Routing id to :meth:`Endpoint.reply` to, for messages that arrived on the listening
    socket; ``None`` for replies arriving on an outgoing connection."""
    peer: str | None
    """Address of the outgoing connection it arrived on, if any."""


class Endpoint(ABC):
    """One participant's view of the network."""

    rejected: Counter[str]
    """Rejected incoming messages by reason (see :data:`qsplit.runtime._wire.REASONS`)."""

    @abstractmethod
    async def recv(self) -> Received:
        """The next valid message; invalid ones are counted in :attr:`rejected` and dropped."""

    @abstractmethod
    async def send(self, address: str, message: Message) -> None:
        """Send to the agent at ``address``; :class:`PeerTimeout` if it cannot take it in time."""

    @abstractmethod
    def connect(self, address: str) -> None:
        """Open the connection to ``address`` now rather than on the first send."""

    @abstractmethod
    async def reply(self, route: bytes, message: Message) -> None:
        """Send back to a connected peer by routing id; :class:`TransportError` if it is gone."""

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
    ) -> None:
        self._context = zmq.asyncio.Context()
        self._identity = identity
        self._token = token
        self._limits = limits
        self._send_timeout_s = send_timeout_s
        self._queue: asyncio.Queue[Received] = asyncio.Queue()
        self._dealers: dict[str, zmq.asyncio.Socket] = {}
        self._monitors: list[zmq.asyncio.Socket] = []
        self._router: zmq.asyncio.Socket | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._listeners: list[PeerListener] = []
        self.rejected = Counter()
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
    ) -> ZmqEndpoint:
        """An endpoint that listens on ``listen`` (``host:port``, port 0 = any) if given."""
        endpoint = cls(
            identity=identity, token=token, limits=limits or Limits(), send_timeout_s=send_timeout_s
        )
        if listen is not None:
            router = endpoint._socket(zmq.ROUTER)
            router.setsockopt(zmq.ROUTER_MANDATORY, 1)
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
            endpoint._readers.append(asyncio.create_task(endpoint._read(router, None)))
        return endpoint

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
            socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
            socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
            monitor = socket.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
            )
            self._monitors.append(monitor)
            socket.connect(zmq_url(address))
            self._dealers[address] = socket
            self._readers.append(asyncio.create_task(self._read(socket, address)))
            self._readers.append(asyncio.create_task(self._watch(monitor, address)))
        return socket

    def watch_peers(self, listener: PeerListener) -> None:
        self._listeners.append(listener)

    async def _watch(self, monitor: zmq.asyncio.Socket, address: str) -> None:
        while True:
            event = parse_monitor_message(await monitor.recv_multipart())
            connected = event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
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
            try:
                message = decode(frames, token=self._token, limits=self._limits)
            except ProtocolError as exc:
                self.rejected[exc.reason] += 1
                continue
            self._queue.put_nowait(Received(message, route, peer))

    async def recv(self) -> Received:
        return await self._queue.get()

    async def send(self, address: str, message: Message) -> None:
        frames = encode(message, self._token)
        try:
            await asyncio.wait_for(
                self._dealer(address).send_multipart(frames, copy=False),
                self._send_timeout_s,
            )
        except TimeoutError:
            raise PeerTimeout(
                f"agent at {address} did not accept a message within {self._send_timeout_s} s",
                peer=address,
            ) from None

    async def reply(self, route: bytes, message: Message) -> None:
        if self._router is None:
            raise TransportError("this endpoint does not listen, it cannot reply")
        try:
            await self._router.send_multipart([route, *encode(message, self._token)], copy=False)
        except zmq.ZMQError as exc:
            raise TransportError(f"peer {route!r} is no longer connected ({exc})") from None

    async def aclose(self) -> None:
        for task in self._readers:
            task.cancel()
        for task in self._readers:
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
        self._context.term()
