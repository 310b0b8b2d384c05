"""Hypothesis strategies for wire frames and agent messages, shared by the CI fuzz tests and
``bench/bench_fuzz.py``. Messages are mostly well formed on the outside (magic, version, a
msgpack header of the right shape) so that they reach the handlers, with bodies and
descriptors whose fields have any type and any value."""

from __future__ import annotations

import math

import msgpack
from hypothesis import strategies as st

from qsplit.runtime._wire import CODECS, DTYPES, MAGIC, VERSION, compress

KINDS = ("deploy", "undeploy", "health", "stats", "profile", "tensors", "done", "reply", "error")
CONTROL = ("shm.hello", "shm.welcome", "shm.ready", "shm.release")
FIELDS = (
    "cid", "dep", "req", "name", "inputs", "outputs", "sha256", "routes", "returns", "peers",
    "via", "return_via", "quant", "graph_optimization", "reply_to", "from", "sent_at",
    "deadline", "relay", "hops", "node", "granularity", "input_shapes", "warmup",
    "repetitions", "int8", "pid", "fd", "segment", "segments", "readable", "component",
    "compute_s", "arrivals", "error", "peer", "codecs",
)  # fmt: skip
BATCH = 8

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, 2**63 - 1, -1, 0, 65536]),
    st.text(max_size=12),
    st.sampled_from(["bad host name", "127.0.0.1:1", "a:0", "../../x", "", "fuzzed"]),
    st.binary(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
dims = st.one_of(st.integers(min_value=0, max_value=4), st.sampled_from([2**63 - 1, -1, 2**31]))


@st.composite
def descriptors(draw) -> dict:
    descriptor = {
        "name": draw(st.one_of(st.sampled_from(["x", "y", "out", "onnx"]), values)),
        "dtype": draw(st.one_of(st.sampled_from([*sorted(DTYPES), "bytes"]), values)),
        "shape": draw(
            st.one_of(st.lists(dims, max_size=5), st.lists(dims, min_size=60, max_size=70), values)
        ),
    }
    if draw(st.booleans()):
        descriptor.update(scale=draw(values), zero_point=draw(values))
    if draw(st.integers(0, 9)) == 0:
        descriptor["shm"] = draw(values)
    if draw(st.integers(0, 3)) == 0:
        descriptor["codec"] = draw(st.one_of(st.sampled_from(CODECS), values))
    return descriptor


@st.composite
def payloads(draw, descriptor: dict) -> bytes:
    """A frame for ``descriptor``: any bytes, or, for a compressed one, a real frame of its
    codec (of any length, so mostly not the declared one; sometimes a bomb)."""
    codec = descriptor.get("codec")
    if codec in CODECS and draw(st.booleans()):
        plain = draw(st.one_of(st.binary(max_size=64), st.just(bytes(2**20))))
        return compress(codec, plain)
    return draw(st.binary(max_size=64))


@st.composite
def messages(draw, kind: str | None = None) -> list[bytes]:
    """One message: a header of ``kind`` (default: any real kind, or text) with fuzzed fields,
    then payload frames."""
    if kind is None:
        kind = draw(st.sampled_from(KINDS + CONTROL) | st.text(max_size=6))
    body = draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=10))
    if draw(st.booleans()):
        body["cid"] = draw(st.integers(0, 1000))
    frames = draw(st.lists(descriptors(), max_size=3))
    header = {"kind": kind, "body": body, "frames": frames}
    payload = [draw(payloads(d)) for d in frames]
    return [MAGIC + bytes([VERSION]) + msgpack.packb(header), *payload]


def batches(kind: str | None = None) -> st.SearchStrategy[list[list[bytes]]]:
    """Up to :data:`BATCH` messages (of ``kind``, if given)."""
    return st.lists(messages(kind), min_size=1, max_size=BATCH)


def frame_lists() -> st.SearchStrategy[list[bytes]]:
    """Frames for the decoder: fuzzed messages, and plain random bytes."""
    return messages() | st.lists(st.binary(max_size=32), max_size=4)
