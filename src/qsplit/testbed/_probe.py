"""The far end of link probes on the testbed, and the near end's ``request`` for them.

:func:`qsplit.profile.measure_link` only needs ``request(payload) -> reply``. On the testbed the
probe travels through the same link emulator as the agents' tensors, to a :class:`ProbeServer`
that answers every probe with :func:`qsplit.profile.answer_probe`, in length-prefixed frames
over plain TCP (:mod:`qsplit.testbed._frames`), so a probe measures the link, not a messaging
library's overheads.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from qsplit.errors import TransportError
from qsplit.profile import Request, answer_probe
from qsplit.testbed._frames import FrameReader, FrameServer, send_frame

_REPLY = answer_probe(b"")
"""The reply to every probe (it does not depend on the probe's payload)."""


class ProbeServer(FrameServer):
    """Answers link probes on a loopback port until closed."""

    no_delay = True

    def reply(self, frame: memoryview) -> bytes:
        return _REPLY


@contextmanager
def probe_request(address: str, timeout_s: float = 30.0) -> Iterator[Request]:
    """A ``request`` for :func:`qsplit.profile.measure_link` over a TCP connection to a
    :class:`ProbeServer` at ``address`` (usually through a link emulator)."""
    host, _, port = address.rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout_s)
    except OSError as exc:
        raise TransportError(f"cannot reach the link probe at {address}: {exc}") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frames = FrameReader(sock)

    def request(payload: bytes) -> bytes:
        try:
            send_frame(sock, payload)
            reply = frames.read()
        except OSError as exc:
            raise TransportError(f"link probe to {address} failed: {exc}") from exc
        if reply is None:
            raise TransportError(f"link probe to {address}: connection closed")
        return bytes(reply)

    with sock:
        yield request
