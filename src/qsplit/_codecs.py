"""The lossless link codecs, shared by the wire (which compresses frames) and profiling (which
measures how much and how fast they compress): one implementation, so the ratios and times the
planner is given are those of the bytes the runtime sends.
"""

from __future__ import annotations

import lz4.frame
import zstandard

CODECS = ("lz4", "zstd")
"""Lossless codecs a tensor frame may be compressed with (the plan's ``link_codec`` values)."""
ZSTD_LEVEL = 1
"""zstd's fastest standard level: on activations it keeps most of the ratio of higher levels at
several times their speed, and links are what it must beat."""


def compress(codec: str, data: bytes | memoryview) -> bytes:
    """``data`` compressed with ``codec`` (one of :data:`CODECS`), as a frame carries it."""
    if codec == "lz4":
        return lz4.frame.compress(data, store_size=True)
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    raise ValueError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")


def decompress(codec: str, data: bytes | memoryview, size: int) -> bytes:
    """``data`` decompressed with ``codec``, which must give exactly ``size`` bytes; at most
    ``size + 1`` are ever produced, whatever ``data`` claims. :class:`ValueError` otherwise
    (also for data that is not of the codec: the libraries' own errors are mapped here)."""
    try:
        if codec == "lz4":
            decompressor = lz4.frame.LZ4FrameDecompressor()
            out = decompressor.decompress(data, max_length=size + 1)
            complete = decompressor.eof and not decompressor.unused_data
        elif codec == "zstd":
            # A stream reader allocates only what is read, never what a frame header claims.
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
            with reader:
                out = reader.read(size + 1)
            complete = True
        else:
            raise ValueError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
    except (RuntimeError, zstandard.ZstdError) as exc:
        raise ValueError(f"not a valid {codec} frame ({exc})") from None
    if len(out) > size:
        raise ValueError(f"decompresses to more than the {size} bytes declared")
    if len(out) < size or not complete:
        raise ValueError(f"decompresses to {len(out)} bytes, not the {size} declared")
    return out
