"""Length-prefixed frames over plain TCP: a 4-byte big-endian length, then the payload.

The link probes and the supervisor's control channel both speak it: plain TCP, so a probe
measures the link rather than a messaging library, and the control channel needs nothing the
supervisor does not already have.
"""

from __future__ import annotations

import socket
import struct

_LENGTH = struct.Struct(">I")


class FrameTooLarge(ValueError):
    """A frame announced more bytes than the reader accepts."""


def _receive_into(sock: socket.socket, buffer: memoryview) -> bool:
    """Fill ``buffer`` from ``sock``; ``False`` if the peer closed first."""
    while buffer:
        received = sock.recv_into(buffer)
        if not received:
            return False
        buffer = buffer[received:]
    return True


class FrameReader:
    """Reads frames from one socket into a reused buffer, without copies; a frame larger than
    ``max_bytes`` raises :class:`FrameTooLarge` before anything is allocated for it."""

    def __init__(self, sock: socket.socket, max_bytes: int = 2**32 - 1) -> None:
        self._sock = sock
        self._max_bytes = max_bytes
        self._buffer = bytearray(1 << 16)

    def read(self) -> memoryview | None:
        """The next frame's payload (valid until the next read), or ``None`` at EOF."""
        header = bytearray(_LENGTH.size)
        if not _receive_into(self._sock, memoryview(header)):
            return None
        (size,) = _LENGTH.unpack(header)
        if size > self._max_bytes:
            raise FrameTooLarge(f"a frame of {size} bytes (at most {self._max_bytes})")
        if size > len(self._buffer):
            self._buffer = bytearray(size)
        payload = memoryview(self._buffer)[:size]
        return payload if _receive_into(self._sock, payload) else None


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(payload)))
    sock.sendall(payload)
