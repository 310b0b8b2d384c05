"""The wire format: one message = one multipart frame list, a small header then raw buffers.

Frame 0 is ``b"QSP"``, one version byte, then a msgpack map (the header); every further frame is
the raw bytes of one tensor or blob, described by the header's ``frames`` list in order. Tensors
are never serialised (no pickle, no protobuf): the sender hands numpy's buffer to the socket and
the receiver wraps the received buffer with ``np.frombuffer``, so a 5 MB activation is not
copied in Python on either side. Between processes of one host a tensor may instead be described
as lying in one of the sender's shared-memory segments (``shm``; see
:mod:`qsplit.runtime._shm`): it then has no frame, and the receiver reads it in place. A tensor
frame may be compressed losslessly (``codec``: lz4's frame format or zstd) where the sender asks
for it; a tensor in shared memory never is, since it crosses no link. The full specification is
in ``docs/runtime.md``.

Decoding checks everything a hostile or broken peer could get wrong (magic, version, token,
header shape, dtype, declared versus actual sizes, total size, decompressed sizes) and raises
:class:`ProtocolError` with one of :data:`REASONS`, which agents count instead of crashing.
"""

from __future__ import annotations

import hmac
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from qsplit._codecs import CODECS, compress, decompress
from qsplit.runtime.errors import ProtocolError

MAGIC = b"QSP"
VERSION = 4
"""2 added tensors in shared memory, 3 relayed messages (``relay``, ``hops``, agents forwarding
``done``), 4 compressed tensor frames (``codec``); a peer speaking another version is refused
with reason ``version``."""
REASONS = ("malformed", "version", "unauthenticated", "oversized")
"""Why a message can be rejected; the keys of an agent's ``rejected`` counters."""

MAX_DIMS = 32
"""Most dimensions a tensor may have (numpy's own limit is 64; ONNX models use a handful)."""
DTYPES = frozenset(
    {"float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"}
)
"""Tensor element types that may cross the wire (int8/uint8 carry optional quantization)."""
BLOB = "bytes"
"""The ``dtype`` of an opaque byte frame (an ONNX component file)."""


@dataclass(frozen=True)
class Limits:
    """Size bounds applied to every received message, before any of it is interpreted."""

    max_message_bytes: int = 256 * 2**20
    """Sum of all frames; also each frame's hard cap at the socket (``zmq.MAXMSGSIZE``)."""
    max_header_bytes: int = 64 * 2**10
    max_frames: int = 256


@dataclass(frozen=True)
class Quant:
    """Affine quantization of an int8/uint8 tensor: ``real = scale × (q − zero_point)``."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class SharedRef:
    """Where a tensor lies in the sender's shared memory: its segment's file descriptor in the
    sender's process, and the segment's id (written in the segment, checked by the reader)."""

    fd: int
    segment: int


Share = Callable[[np.ndarray], SharedRef | None]
"""Puts a tensor in shared memory for the message's receiver, or declines (``None``)."""
Resolve = Callable[[SharedRef, str, tuple[int, ...]], np.ndarray]
"""The tensor of this dtype and shape at the start of a sender's segment; raises
:class:`OSError`/:class:`ValueError` when it cannot be read."""


@dataclass(frozen=True)
class Message:
    """A decoded message: a kind, a small msgpack-able body, tensors and blobs by name."""

    kind: str
    body: Mapping[str, Any] = field(default_factory=dict)
    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)
    quant: Mapping[str, Quant] = field(default_factory=dict)
    """Quantization parameters of those tensors that carry them."""
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    codecs: Mapping[str, str] = field(default_factory=dict)
    """Sending: the codec (one of :data:`CODECS`) to compress each named tensor's frame with.
    Received: the codec each tensor's frame came compressed with."""
    compressed_bytes: Mapping[str, int] = field(default_factory=dict)
    """Received: the size of each compressed tensor's frame, as it crossed the link."""

    @property
    def payload_bytes(self) -> int:
        """Bytes of tensors and blobs once decoded: the memory the message holds."""
        return sum(a.nbytes for a in self.tensors.values()) + sum(map(len, self.blobs.values()))

    @property
    def wire_bytes(self) -> int:
        """Bytes of tensors and blobs as a link carried them (compressed frames at their
        compressed size)."""
        return self.payload_bytes - sum(
            self.tensors[name].nbytes - size for name, size in self.compressed_bytes.items()
        )


def encode(
    message: Message,
    token: str | None = None,
    share: Share | None = None,
    counts: Counter[str] | None = None,
) -> list[bytes | memoryview]:
    """Frames for ``message``; tensor frames are views of the arrays' memory (no copy), except
    those compressed as :attr:`Message.codecs` asks.

    ``share``, when given, is offered every tensor; those it places in shared memory are
    described by reference and get no frame (and are not compressed: they cross no link).
    ``counts``, when given, adds each compressed frame's bytes before (``<codec>_raw_bytes``)
    and after (``<codec>_wire_bytes``) compression.
    """
    descriptors: list[dict[str, Any]] = []
    buffers: list[bytes | memoryview] = []
    for name, array in message.tensors.items():
        array = np.ascontiguousarray(array)
        descriptor: dict[str, Any] = {
            "name": name,
            "dtype": array.dtype.name,
            "shape": list(array.shape),
        }
        if name in message.quant:
            q = message.quant[name]
            descriptor.update(scale=float(q.scale), zero_point=int(q.zero_point))
        descriptors.append(descriptor)
        ref = share(array) if share is not None else None
        if ref is not None:
            descriptor["shm"] = [ref.fd, ref.segment]
            continue
        raw = memoryview(array).cast("B") if array.size else b""
        codec = message.codecs.get(name)
        if codec is None:
            buffers.append(raw)
            continue
        packed = compress(codec, raw)
        descriptor["codec"] = codec
        buffers.append(packed)
        if counts is not None:
            counts[f"{codec}_raw_bytes"] += array.nbytes
            counts[f"{codec}_wire_bytes"] += len(packed)
    for name, blob in message.blobs.items():
        descriptors.append({"name": name, "dtype": BLOB, "shape": [len(blob)]})
        buffers.append(blob)
    header: dict[str, Any] = {"kind": message.kind, "body": dict(message.body)}
    header["frames"] = descriptors
    if token is not None:
        header["token"] = token
    return [MAGIC + bytes([VERSION]) + msgpack.packb(header), *buffers]


def decode(
    frames: Sequence[Any],
    *,
    token: str | None = None,
    limits: Limits | None = None,
    resolve: Resolve | None = None,
) -> Message:
    """Check and decode received frames (bytes, or zmq frames exposing ``.buffer``).

    ``token``, when set, must match the header's in constant time. Tensors in shared memory
    are read through ``resolve``; without it they are refused. Raises :class:`ProtocolError`
    naming the reason; never anything else for any input: the checks below are meant to catch
    every bad frame with a precise reason, and whatever they miss (numpy or msgpack refusing
    something unforeseen) is still a ``malformed`` message, never an exception that could stop
    a receive loop.
    """
    try:
        return _decode(frames, token, limits or Limits(), resolve)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError("malformed", f"undecodable ({type(exc).__name__}: {exc})") from None


def header_fields(frames: Sequence[Any]) -> tuple[str | None, dict[str, Any]]:
    """The ``kind`` and ``body`` of a message, read without checking anything else, so that a
    rejected request can still be answered; ``(None, {})`` where unreadable."""
    try:
        first = memoryview(getattr(frames[0], "buffer", frames[0]))
        header = msgpack.unpackb(first[4:], raw=False, strict_map_key=True)
        kind, body = header.get("kind"), header.get("body")
        return (kind if isinstance(kind, str) else None), (body if isinstance(body, dict) else {})
    except Exception:
        return None, {}


def decompresses(frames: Sequence[Any]) -> bool:
    """Whether decoding a message means decompressing a frame (and reads nothing from shared
    memory), read from its header without checking anything else: such a decode is worth a
    thread, the others take microseconds. ``False`` where the header is unreadable."""
    try:
        first = memoryview(getattr(frames[0], "buffer", frames[0]))
        descriptors = msgpack.unpackb(first[4:], raw=False, strict_map_key=True)["frames"]
        kinds = [d.keys() for d in descriptors]
        return any("codec" in k for k in kinds) and not any("shm" in k for k in kinds)
    except Exception:
        return False


def _decode(
    frames: Sequence[Any], token: str | None, limits: Limits, resolve: Resolve | None
) -> Message:
    buffers = [memoryview(getattr(f, "buffer", f)) for f in frames]
    if not buffers:
        raise ProtocolError("malformed", "no frames")
    if len(buffers) > limits.max_frames + 1:
        raise ProtocolError("oversized", f"{len(buffers)} frames (limit {limits.max_frames})")
    total = sum(b.nbytes for b in buffers)
    if total > limits.max_message_bytes:
        raise ProtocolError("oversized", f"{total} bytes (limit {limits.max_message_bytes})")
    first = buffers[0]
    if first.nbytes > limits.max_header_bytes + 4:
        raise ProtocolError("oversized", f"header of {first.nbytes} bytes")
    if first.nbytes < 4 or bytes(first[:3]) != MAGIC:
        raise ProtocolError("malformed", "not a qsplit message (bad magic)")
    if first[3] != VERSION:
        raise ProtocolError(
            "version", f"wire version {first[3]}, this side speaks {VERSION}: upgrade qsplit"
        )
    header = _header(first[4:])
    if token is not None and not hmac.compare_digest(
        str(header.get("token", "")).encode(), token.encode()
    ):
        raise ProtocolError("unauthenticated", "missing or wrong token")
    descriptors = header["frames"]
    max_dim = limits.max_message_bytes
    shared = [d for d in descriptors if isinstance(d, dict) and "shm" in d]
    if len(descriptors) - len(shared) != len(buffers) - 1:
        raise ProtocolError(
            "malformed",
            f"{len(descriptors) - len(shared)} frames described, {len(buffers) - 1} sent",
        )
    framed = iter(buffers[1:])
    tensors: dict[str, np.ndarray] = {}
    quant: dict[str, Quant] = {}
    blobs: dict[str, bytes] = {}
    codecs: dict[str, str] = {}
    compressed: dict[str, int] = {}
    for descriptor in descriptors:
        name, dtype, shape = _descriptor(descriptor, max_dim)
        if name in tensors or name in blobs:
            raise ProtocolError("malformed", f"frame {name!r} sent twice")
        if "shm" in descriptor:
            total += _size(name, dtype, shape)
            if total > limits.max_message_bytes:
                raise ProtocolError(
                    "oversized", f"{total} bytes (limit {limits.max_message_bytes})"
                )
            tensors[name] = _shared_tensor(name, dtype, shape, descriptor["shm"], resolve)
        else:
            buffer = next(framed)
            if dtype == BLOB:
                if shape != (buffer.nbytes,):
                    raise ProtocolError("malformed", f"blob {name!r} length mismatch")
                blobs[name] = bytes(buffer)
                continue
            if "codec" in descriptor:
                # What decompression may produce is bounded by the declared tensor, and all
                # declared tensors together by the message limit: no decompression bomb.
                size = _size(name, dtype, shape)
                total += size - buffer.nbytes
                if total > limits.max_message_bytes:
                    limit = limits.max_message_bytes
                    raise ProtocolError("oversized", f"{total} bytes decoded (limit {limit})")
                codec = descriptor["codec"]
                compressed[name], codecs[name] = buffer.nbytes, _codec(name, codec)
                buffer = memoryview(_decompress(name, codec, buffer, size))
            if _size(name, dtype, shape) != buffer.nbytes:
                raise ProtocolError(
                    "malformed", f"tensor {name!r}: {buffer.nbytes} bytes for {dtype}{list(shape)}"
                )
            tensors[name] = np.frombuffer(buffer, dtype=dtype).reshape(shape)
        if "scale" in descriptor:
            quant[name] = _quant(name, dtype, descriptor)
    return Message(header["kind"], header["body"], tensors, quant, blobs, codecs, compressed)


def _header(raw: memoryview) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError("malformed", f"header is not msgpack ({exc})") from None
    if (
        not isinstance(header, dict)
        or not isinstance(header.get("kind"), str)
        or not isinstance(header.get("body"), dict)
        or not isinstance(header.get("frames"), list)
    ):
        raise ProtocolError("malformed", "header lacks kind, body or frames")
    return header


def _descriptor(descriptor: Any, max_dim: int) -> tuple[str, str, tuple[int, ...]]:
    """Name, dtype and shape of a frame descriptor. No dimension may exceed ``max_dim`` (the
    message size limit): a larger one cannot describe bytes that fit in the message, and an
    empty tensor's other dimensions (``[0, 2**63-1, …]``) would overflow numpy."""
    if not isinstance(descriptor, dict):
        raise ProtocolError("malformed", "frame descriptor is not a map")
    name, dtype, shape = descriptor.get("name"), descriptor.get("dtype"), descriptor.get("shape")
    if not isinstance(name, str) or (dtype not in DTYPES and dtype != BLOB):
        raise ProtocolError("malformed", f"frame {name!r}: unsupported dtype {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= max_dim for d in shape
        )
    ):
        raise ProtocolError(
            "malformed",
            f"frame {name!r}: bad shape (at most {MAX_DIMS} dimensions of 0..{max_dim})",
        )
    return name, dtype, tuple(shape)


def _size(name: str, dtype: str, shape: tuple[int, ...]) -> int:
    if dtype == BLOB:
        raise ProtocolError("malformed", f"blob {name!r} cannot be in shared memory")
    return math.prod(shape) * np.dtype(dtype).itemsize


def _shared_tensor(
    name: str, dtype: str, shape: tuple[int, ...], where: Any, resolve: Resolve | None
) -> np.ndarray:
    if resolve is None:
        raise ProtocolError(
            "malformed", f"tensor {name!r} is in shared memory, but the sender shares none here"
        )
    if (
        not isinstance(where, list)
        or len(where) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in where)
    ):
        raise ProtocolError("malformed", f"tensor {name!r}: bad shared-memory reference")
    try:
        return resolve(SharedRef(*where), dtype, shape)
    except (OSError, ValueError) as exc:
        raise ProtocolError(
            "malformed", f"tensor {name!r}: shared memory not readable ({exc})"
        ) from None


def _codec(name: str, codec: Any) -> str:
    if codec not in CODECS:
        raise ProtocolError("malformed", f"tensor {name!r}: unknown codec {codec!r}")
    return str(codec)


def _decompress(name: str, codec: str, data: memoryview, size: int) -> bytes:
    try:
        return decompress(codec, data, size)
    except ValueError as exc:
        raise ProtocolError("malformed", f"tensor {name!r}: bad {codec} frame: {exc}") from None


def _quant(name: str, dtype: str, descriptor: Mapping[str, Any]) -> Quant:
    if dtype not in ("int8", "uint8"):
        raise ProtocolError("malformed", f"tensor {name!r}: quantization on a {dtype} tensor")
    try:
        return quant_of(descriptor.get("scale"), descriptor.get("zero_point"), dtype)
    except ValueError as exc:
        raise ProtocolError("malformed", f"tensor {name!r}: {exc}") from None


def quant_of(scale: Any, zero_point: Any, dtype: str | None = None) -> Quant:
    """Quantization parameters, checked: a finite float scale and an integer zero point that
    ``dtype`` (default: int8 or uint8) can hold; :class:`ValueError` otherwise. Deploys and
    frame descriptors both pass here, so an ``inf`` never reaches arithmetic."""
    low, high = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype else (-128, 255)
    if not isinstance(scale, float | int) or isinstance(scale, bool) or not math.isfinite(scale):
        raise ValueError(f"quantization scale {scale!r} is not a finite number")
    if not isinstance(zero_point, int) or isinstance(zero_point, bool):
        raise ValueError(f"zero point {zero_point!r} is not an integer")
    if not low <= zero_point <= high:
        raise ValueError(f"zero point {zero_point} is outside {low}..{high}")
    return Quant(float(scale), zero_point)
