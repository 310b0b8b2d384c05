"""Length-prefixed frames over plain TCP: a 4-byte big-endian length, then the payload.

The link probes and the supervisor's control channel both speak it: plain TCP, so a probe
measures the link rather than a messaging library, and the control channel needs nothing the
supervisor does not already have.
"""

from __future__ import annotations

import socket
import struct
import threading

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


class FrameServer:
    """Answers every frame of every connection with one frame, on a loopback port, until closed.

    The link probes and the control channel are both this loop, a thread per connection (a few
    long-lived peers); subclasses say what to answer (:meth:`reply`) and what to say before
    dropping a connection whose frame exceeds :attr:`max_frame_bytes` (:meth:`oversized`).
    """

    max_frame_bytes = 2**32 - 1
    no_delay = False
    """Send each frame at once (``TCP_NODELAY``): what a probe timing the link needs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self.address = f"{self.host}:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def reply(self, frame: memoryview) -> bytes:
        raise NotImplementedError

    def oversized(self, error: FrameTooLarge) -> bytes | None:
        """The last frame for a peer that sent too large a one (``None``: just hang up)."""
        return None

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.no_delay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frames = FrameReader(conn, self.max_frame_bytes)
        with conn:
            try:
                while (frame := frames.read()) is not None:
                    send_frame(conn, self.reply(frame))
                return
            except FrameTooLarge as exc:
                last = self.oversized(exc)
            except OSError:
                return
            if last is not None:
                try:
                    send_frame(conn, last)
                except OSError:
                    return
