"""The wire format round-trips tensors without copies and rejects every malformed message."""

from __future__ import annotations

from collections import Counter

import msgpack
import numpy as np
import pytest

from qsplit.runtime import Limits, Message, ProtocolError, Quant
from qsplit.runtime._wire import (
    CODECS,
    MAGIC,
    VERSION,
    SharedRef,
    compress,
    decode,
    decompress,
    encode,
)


def as_received(frames: list) -> list[bytes]:
    return [bytes(f) for f in frames]


def test_round_trip_of_tensors_blobs_and_quantization() -> None:
    rng = np.random.default_rng(0)
    message = Message(
        "tensors",
        {"req": "7", "reply_to": b"\x00id"},
        tensors={
            "x": rng.standard_normal((2, 3, 4)).astype(np.float32),
            "q": rng.integers(-128, 127, (5,), dtype=np.int8),
            "empty": np.zeros((0, 3), np.int64),
            "strided": np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2],
        },
        quant={"q": Quant(0.05, -3)},
        blobs={"onnx": b"\x08\x07model"},
    )
    decoded = decode(as_received(encode(message, "secret")), token="secret")
    assert decoded.kind == "tensors" and decoded.body == message.body
    for name, array in message.tensors.items():
        np.testing.assert_array_equal(decoded.tensors[name], array)
        assert decoded.tensors[name].dtype == array.dtype
    assert decoded.quant == {"q": Quant(0.05, -3)}
    assert decoded.blobs == {"onnx": b"\x08\x07model"}


def test_tensor_frames_are_views_not_copies() -> None:
    array = np.arange(1000, dtype=np.float32)
    frames = encode(Message("tensors", tensors={"a": array}))
    assert np.shares_memory(np.frombuffer(frames[1], np.float32), array)


def header(**fields: object) -> bytes:
    base = {"kind": "tensors", "body": {}, "frames": []}
    return MAGIC + bytes([VERSION]) + msgpack.packb({**base, **fields})


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "malformed"),
        ([b"GET / HTTP/1.1\r\n"], "malformed"),
        ([MAGIC + bytes([VERSION]) + b"\xc1\xff"], "malformed"),
        ([MAGIC + bytes([VERSION + 1]) + msgpack.packb({})], "version"),
        ([MAGIC + bytes([VERSION]) + msgpack.packb([1, 2])], "malformed"),
        ([header(kind=3)], "malformed"),
        ([header(frames=[{"name": "x", "dtype": "float32", "shape": [2]}])], "malformed"),
        (
            [header(frames=[{"name": "x", "dtype": "float32", "shape": [3]}]), b"\0" * 8],
            "malformed",
        ),
        ([header(frames=[{"name": "x", "dtype": "object", "shape": [1]}]), b"\0" * 8], "malformed"),
        ([header(frames=[{"name": "x", "dtype": "int8", "shape": [-1]}]), b"\0"], "malformed"),
        (
            [
                header(
                    frames=[
                        {
                            "name": "x",
                            "dtype": "float32",
                            "shape": [1],
                            "scale": 0.1,
                            "zero_point": 0,
                        }
                    ]
                ),
                b"\0" * 4,
            ],
            "malformed",
        ),
        ([header(), b"\0" * 10], "malformed"),
        (
            [header(frames=[{"name": "b", "dtype": "bytes", "shape": [2048]}]), b"\0" * 2048],
            "oversized",
        ),
        ([header()] + [b""] * 40, "oversized"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(frames: list[bytes], reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(frames, limits=Limits(max_message_bytes=1024, max_frames=32))
    assert caught.value.reason == reason


def test_wrong_or_missing_token_is_unauthenticated() -> None:
    frames = as_received(encode(Message("health"), "wrong"))
    for sent in (frames, as_received(encode(Message("health")))):
        with pytest.raises(ProtocolError) as caught:
            decode(sent, token="secret")
        assert caught.value.reason == "unauthenticated"


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_tensors_round_trip_and_report_their_wire_size(codec: str) -> None:
    zeros = np.zeros((64, 64), np.float32)
    noisy = np.random.default_rng(1).standard_normal(100).astype(np.float16)
    message = Message("tensors", tensors={"z": zeros, "n": noisy}, codecs={"z": codec})
    counts: Counter[str] = Counter()
    decoded = decode(as_received(encode(message, counts=counts)))
    np.testing.assert_array_equal(decoded.tensors["z"], zeros)
    np.testing.assert_array_equal(decoded.tensors["n"], noisy)
    assert decoded.codecs == {"z": codec}
    wire = decoded.compressed_bytes["z"]
    assert wire < zeros.nbytes // 50
    assert decoded.wire_bytes == wire + noisy.nbytes
    assert decoded.payload_bytes == zeros.nbytes + noisy.nbytes
    assert counts == {f"{codec}_raw_bytes": zeros.nbytes, f"{codec}_wire_bytes": wire}


def test_a_tensor_in_shared_memory_is_not_compressed() -> None:
    array = np.zeros(256, np.float32)
    frames = encode(
        Message("tensors", tensors={"a": array}, codecs={"a": "lz4"}),
        share=lambda _: SharedRef(3, 1),
    )
    (descriptor,) = msgpack.unpackb(bytes(frames[0])[4:])["frames"]
    assert len(frames) == 1 and "codec" not in descriptor and descriptor["shm"] == [3, 1]


def compressed(codec: str, shape: list[int], data: bytes, **extra: object) -> list[bytes]:
    descriptor = {"name": "x", "dtype": "float32", "shape": shape, "codec": codec, **extra}
    return [header(frames=[descriptor]), data]


BOMB = compress("zstd", bytes(2**20))


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        # Decompresses to more, or less, than the declared tensor.
        (compressed("lz4", [4], compress("lz4", bytes(20))), "malformed"),
        (compressed("zstd", [8], compress("zstd", bytes(20))), "malformed"),
        # A bomb: a tiny frame that would expand to a MiB, declared as 16 bytes.
        (compressed("zstd", [4], BOMB), "malformed"),
        (compressed("lz4", [4], compress("lz4", bytes(2**20))), "malformed"),
        # Declared beyond the message limit: refused before anything is decompressed.
        (compressed("zstd", [256, 1024], BOMB), "oversized"),
        (compressed("lz4", [4], b"not lz4 at all"), "malformed"),
        (compressed("zstd", [4], compress("zstd", bytes(16)) + b"junk"), "malformed"),
        (compressed("gzip", [4], bytes(16)), "malformed"),
        (compressed(["lz4"], [4], compress("lz4", bytes(16))), "malformed"),
    ],
)
def test_bad_compressed_frames_are_rejected(frames: list[bytes], reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(frames, limits=Limits(max_message_bytes=2**16))
    assert caught.value.reason == reason


@pytest.mark.parametrize("codec", CODECS)
def test_decompression_never_produces_more_than_one_byte_past_the_declared_size(
    codec: str,
) -> None:
    with pytest.raises(ValueError, match="more than the 100 bytes"):
        decompress(codec, compress(codec, bytes(10**7)), 100)
