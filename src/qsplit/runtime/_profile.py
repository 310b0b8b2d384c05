"""Profiling on request: an agent times every block of a model on its own machine.

A node's profile must be measured where the node runs, under the padding factor and ORT thread
settings its agent runs components with; otherwise plan and run disagree. So the control plane
has a ``profile`` message: the requester names a model by sha256, the agent profiles it with
:func:`qsplit.profile.profile_node` (the function ``qsplit profile`` calls, so both paths give
the same numbers) and answers with the ComputeProfile dict. An emulated node's requester may
name the node's ``reference_time_s``, which selects the model's shipped profile if it has one.
Model files are kept by the agent under their hash, so a second profile of the same model sends
no bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.profile import ComputeProfile, Statistic, profile_node
from qsplit.runtime._ask import ask, open_asking
from qsplit.runtime._keys import CurveKeys
from qsplit.runtime.errors import PeerTimeout, RemoteError

MISSING = "model not on this agent"
"""The error an agent answers when it lacks the model: the requester then sends the bytes."""


class ModelStore:
    """ONNX files an agent was sent for profiling, by sha256, in a folder it owns."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def path(self, sha256: str) -> Path | None:
        """The stored file of ``sha256``, if the agent has it."""
        if len(sha256) != 64 or not set(sha256) <= set("0123456789abcdef"):
            return None  # a hash, never a path ("../../x" padded to 64 characters)
        path = self._folder / f"{sha256}.onnx"
        return path if path.is_file() else None

    def add(self, sha256: str, onnx_bytes: bytes) -> Path:
        """Store ``onnx_bytes`` after checking them against ``sha256``."""
        if hashlib.sha256(onnx_bytes).hexdigest() != sha256:
            raise InputError("model bytes do not match their sha256, refused", field="sha256")
        path = self._folder / f"{sha256}.onnx"
        path.write_bytes(onnx_bytes)
        return path


def profile_here(
    path: Path,
    body: Mapping[str, Any],
    *,
    node: str,
    padding_factor: float,
    threads: int,
    statistic: Statistic = "median",
) -> dict[str, Any]:
    """The ComputeProfile dict of the model at ``path`` on this machine, as ``node``."""
    shapes = {str(k): tuple(int(d) for d in v) for k, v in body.get("input_shapes", {}).items()}
    model, graph = analyze(str(path), shapes, body.get("granularity", "block"))
    reference_s = body.get("reference_time_s")
    profile = profile_node(
        model,
        graph,
        node=node,
        reference_time_s=None if reference_s is None else float(reference_s),
        padding_factor=padding_factor,
        threads=threads,
        warmup=int(body.get("warmup", 3)),
        repetitions=int(body.get("repetitions", 20)),
        int8=bool(body.get("int8", True)),
        statistic=statistic,
    )
    return profile.to_dict()


def profile_on_agent(
    address: str,
    model_path: str | Path,
    node: str,
    *,
    token: str | None = None,
    granularity: str = "block",
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    warmup: int = 3,
    repetitions: int = 20,
    int8: bool = True,
    reference_time_s: float | None = None,
    timeout_s: float = 600.0,
    curve: CurveKeys | None = None,
) -> ComputeProfile:
    """Profile every block of ``model_path`` on the agent of ``node`` at ``address``, under
    that agent's padding factor and thread settings.

    ``reference_time_s``, for an emulated node, is its absolute speed: a model with a shipped
    profile then gets that profile scaled to it, measured nowhere
    (:func:`qsplit.profile.profile_node`).

    ``curve`` (the requester's keys, :func:`qsplit.runtime.curve_keys`) reaches an agent that
    speaks only CURVE. The model's bytes travel only if the agent does not already hold them. Raises
    :class:`RemoteError` naming the node if it cannot profile (or is another node), and
    :class:`PeerTimeout` if it does not answer within ``timeout_s``.
    """
    onnx_bytes = Path(model_path).read_bytes()
    body = {
        "node": node,
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "granularity": granularity,
        "input_shapes": {k: list(v) for k, v in (input_shapes or {}).items()},
        "warmup": warmup,
        "repetitions": repetitions,
        "int8": int8,
        "reference_time_s": reference_time_s,
    }
    answer = asyncio.run(_exchange(address, node, token, curve, body, onnx_bytes, timeout_s))
    return ComputeProfile.from_dict(answer["profile"])


async def _exchange(
    address: str,
    node: str,
    token: str | None,
    curve: CurveKeys | None,
    body: dict[str, Any],
    onnx_bytes: bytes,
    timeout_s: float,
) -> dict[str, Any]:
    endpoint = await open_asking(address, node, token, curve, timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            answer = await ask(endpoint, address, "profile", body)
            if answer.get("error") == MISSING:
                answer = await ask(endpoint, address, "profile", body, {"onnx": onnx_bytes})
    except (TimeoutError, PeerTimeout):
        raise PeerTimeout(
            f"node {node!r} ({address}) did not finish profiling within {timeout_s:g} s",
            peer=node,
        ) from None
    finally:
        await endpoint.aclose()
    if not answer.get("ok"):
        raise RemoteError(f"node {node!r}: {answer.get('error')}", peer=node)
    return answer
