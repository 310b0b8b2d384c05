"""The Ray Serve deployment that runs one component: its replicas hold a
:class:`~qsplit.serve._runner.ComponentRunner` and batch concurrent requests.

Imported only once Ray is known to be there (:func:`qsplit.serve._ray.import_ray`). A fleet
run's emulated nodes are :class:`~qsplit.serve._node.NodeReplica` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np
import ray
from ray import serve

from qsplit.serve._runner import ComponentRunner

Feeds = dict[str, np.ndarray]


@serve.deployment
class ComponentReplica:
    """One component on a shared node. A call takes the tensors it reads as dicts of name →
    array — the outputs of its producers (deployment responses, which Ray resolves replica to
    replica through the object store) and the caller's own — and returns its outputs."""

    def __init__(
        self,
        onnx_bytes: bytes,
        inputs: Sequence[str],
        outputs: Sequence[str],
        max_batch_size: int,
        batch_wait_timeout_s: float,
        threads: int,
        optimize: bool,
    ) -> None:
        self._inputs = frozenset(inputs)
        self._runner = ComponentRunner(
            onnx_bytes, outputs, max_batch_size=max_batch_size, threads=threads, optimize=optimize
        )
        # A component whose graph cannot take a batch runs its requests one at a time.
        size = max_batch_size if self._runner.batches else 1
        self._run_batch = serve.batch(
            max_batch_size=size, batch_wait_timeout_s=batch_wait_timeout_s
        )(self._batch)
        self._largest_batch = 0

    async def __call__(self, *parts: Mapping[str, np.ndarray]) -> Feeds:
        feeds = {k: v for part in parts for k, v in part.items() if k in self._inputs}
        return await self._run_batch(feeds)

    async def _batch(self, requests: list[Feeds]) -> list[Feeds]:
        self._largest_batch = max(self._largest_batch, len(requests))
        # ORT releases the GIL: the replica keeps receiving (and queueing the next batch).
        return await asyncio.to_thread(self._runner.run_many, requests)

    def report(self) -> dict[str, object]:
        """Plain values for :class:`qsplit.serve.ReplicaReport`."""
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "batches": self._runner.batches,
            "largest_batch": self._largest_batch,
        }
