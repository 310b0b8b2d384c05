"""Hand-made messages for a real agent: what a broken or hostile peer could send."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import numpy as np
import zmq

from qsplit.runtime._wire import MAGIC, VERSION, Message, decode, encode

REPLY_TIMEOUT_S = 10.0


def frames_of(
    kind: str,
    body: dict[str, Any],
    descriptors: list[Any] | None = None,
    *payload: bytes,
    token: str | None = None,
) -> list:
    """A message with a free-form header (descriptors need not be valid)."""
    header: dict[str, Any] = {"kind": kind, "body": body, "frames": descriptors or []}
    if token is not None:
        header["token"] = token
    return [MAGIC + bytes([VERSION]) + msgpack.packb(header), *payload]


def exchange(
    address: str, frames: list, *, wait_s: float = REPLY_TIMEOUT_S, identity: bytes = b""
) -> dict | None:
    """Send ``frames`` from a fresh connection (routing id ``identity``, if given); the body of
    the answer, or ``None``."""
    with zmq.Context() as context, context.socket(zmq.DEALER) as socket:
        socket.setsockopt(zmq.LINGER, 2000)
        if identity:
            socket.setsockopt(zmq.ROUTING_ID, identity)
        socket.connect(f"tcp://{address}")
        socket.send_multipart([bytes(f) for f in frames])
        if wait_s and socket.poll(int(wait_s * 1000)):
            return dict(decode(socket.recv_multipart()).body)
        return None


def health(address: str, token: str | None = None) -> dict | None:
    return exchange(address, encode(Message("health", {"cid": "h"}), token))


def deploy_frames(
    onnx_bytes: bytes,
    inputs: list[str],
    outputs: list[str],
    reference: dict[str, np.ndarray] | None = None,
    **body: Any,
) -> list:
    """A ``deploy`` of one component reading ``inputs`` and returning ``outputs`` to the
    requester, with ``reference`` values of its inputs; ``body`` overrides any field."""
    fields = {
        "cid": "d",
        "dep": "dep-1",
        "name": "c0",
        "inputs": inputs,
        "outputs": outputs,
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "routes": {},
        "returns": outputs,
        "quant": {},
        "peers": {},
        "via": {},
        "return_via": [],
        "graph_optimization": "all",
        **body,
    }
    return encode(Message("deploy", fields, reference or {}, blobs={"onnx": onnx_bytes}))
