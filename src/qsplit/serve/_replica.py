"""The Ray Serve deployment that runs one component: its replicas hold a
:class:`~qsplit.serve._runner.ComponentRunner` and batch concurrent requests.

Imported only once Ray is known to be there (:func:`qsplit.serve._ray.import_ray`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import ray
from ray import serve

from qsplit.serve._emulation import LINKS, TRACE, batch_target_s, route_s, tensor_bytes
from qsplit.serve._runner import ComponentRunner

Feeds = dict[str, np.ndarray]


@serve.deployment
class ComponentReplica:
    """One component on a shared node. A call takes the tensors it reads as dicts of name →
    array — the outputs of its producers (deployment responses, which Ray resolves replica to
    replica through the object store) and the caller's own — and returns its outputs.

    With ``emulation`` (``{"node", "key", "compute_s", "fixed_fraction", "slots"}``: plain
    values, and ``slots`` the node's :class:`~qsplit.serve._slots.NodeSlots` actor or ``None``)
    the replica is an emulated node: it waits out the planned links of inputs that come from
    other shared nodes (the call's :data:`LINKS` part), takes a slot of the node's pool for each
    batch, pads every batch to the node's time for it, and adds a :data:`TRACE` entry to its
    outputs (queueing wait, batch, overrun), passing on those of the replicas before it so that
    the caller receives the request's whole trace."""

    def __init__(
        self,
        onnx_bytes: bytes,
        inputs: Sequence[str],
        outputs: Sequence[str],
        max_batch_size: int,
        batch_wait_timeout_s: float,
        max_concurrent_batches: int,
        threads: int,
        optimize: bool,
        emulation: Mapping[str, Any] | None = None,
    ) -> None:
        self._inputs = frozenset(inputs)
        self._runner = ComponentRunner(
            onnx_bytes, outputs, max_batch_size=max_batch_size, threads=threads, optimize=optimize
        )
        # A component whose graph cannot take a batch runs a batch one request at a time; when
        # emulating, the batch still forms and is padded to the node's time for its size (the
        # batch profile gives such blocks no shared part), as the fleet model prices it.
        batching = self._runner.batches or emulation is not None
        size = max_batch_size if batching else 1
        # Built here, not as a decorator: max_concurrent_batches has no setter in Serve.
        self._run_batch = serve.batch(
            max_batch_size=size,
            batch_wait_timeout_s=batch_wait_timeout_s,
            max_concurrent_batches=max_concurrent_batches,
        )(self._batch)
        self._largest_batch = 0
        self._emulation = dict(emulation) if emulation is not None else None
        self._batches = 0
        self._replica = ray.get_runtime_context().get_actor_id() or ""
        self._slots = (self._emulation or {}).get("slots")

    async def __call__(self, *parts: Mapping[str, Any]) -> dict[str, Any]:
        feeds = {k: v for part in parts for k, v in part.items() if k in self._inputs}
        if self._emulation is None:
            outputs, _ = await self._run_batch((feeds, time.time()))
            return outputs
        trace = {k: v for part in parts for k, v in part.items() if k.startswith(TRACE)}
        links = [group for part in parts for group in part.get(LINKS, ())]
        # Inputs from other shared nodes arrive when their slowest link delivers them.
        await asyncio.sleep(max((route_s(h, tensor_bytes(feeds, t)) for t, h in links), default=0))
        outputs, run = await self._run_batch((feeds, time.time()))
        return {**outputs, **trace, TRACE + self._emulation["key"]: run}

    async def _batch(
        self, requests: list[tuple[Feeds, float]]
    ) -> list[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        closed = time.time()
        if self._slots is not None:
            await self._slots.acquire.remote()
        try:
            started = time.time()
            outputs, overrun = await self._run_padded(requests)
        finally:
            if self._slots is not None:
                await self._slots.release.remote()
        self._batches += 1
        run = {
            "node": self._emulation["node"] if self._emulation is not None else "",
            "replica": self._replica,
            "batch": self._batches,
            "start": started,
            "end": time.time(),
            "size": len(requests),
            "overrun": overrun,
        }
        return [
            (out, {**run, "wait_s": started - closed, "forming_s": closed - arrived})
            for out, (_, arrived) in zip(outputs, requests, strict=True)
        ]

    async def _run_padded(
        self, requests: list[tuple[Feeds, float]]
    ) -> tuple[list[dict[str, np.ndarray]], bool]:
        """The batch's outputs, at the node's time for it when emulating; whether the host took
        longer than that (an overrun)."""
        started = time.time()
        self._largest_batch = max(self._largest_batch, len(requests))
        # ORT releases the GIL: the replica keeps receiving (and queueing the next batch).
        outputs = await asyncio.to_thread(self._runner.run_many, [f for f, _ in requests])
        if self._emulation is None:
            return outputs, False
        ran_s = time.time() - started
        target_s = batch_target_s(
            self._emulation["compute_s"], self._emulation["fixed_fraction"], len(requests)
        )
        if ran_s < target_s:
            await asyncio.sleep(target_s - ran_s)
        return outputs, ran_s > target_s

    def report(self) -> dict[str, object]:
        """Plain values for :class:`qsplit.serve.ReplicaReport`."""
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "batches": self._runner.batches,
            "largest_batch": self._largest_batch,
        }
