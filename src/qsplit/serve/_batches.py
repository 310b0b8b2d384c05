"""Running a shared node's batches padded to the node's time, on a thread pool of their own: in
a node's replica (one thread per slot) or in one of its worker replicas (one thread). No Ray.

A batch runs the host's real compute (ONNX Runtime, which releases the GIL) in a pool thread,
then sleeps on the event loop until ``start + target``: the node's time for the batch from the
moment its server took it. A batch that computed past that is an *overrun* (docs/serve.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypedDict

import numpy as np

from qsplit.serve._runner import ComponentRunner

Feeds = dict[str, np.ndarray]


class Runs(Protocol):
    """What runs a component's batch: :class:`~qsplit.serve._runner.ComponentRunner`."""

    def run_many(self, requests: Sequence[Feeds]) -> list[dict[str, np.ndarray]]: ...


class Ran(TypedDict):
    """A batch that ran, as plain values (it crosses Ray from a worker replica to the front)."""

    outputs: list[dict[str, np.ndarray]]
    received: float
    """Epoch seconds its server got it (after the hop from the node's front, for a worker)."""
    start: float
    """Epoch seconds its server took it: the end of its wait."""
    end: float
    """Epoch seconds it ended, padded (``start`` + target unless it overran)."""
    overrun: bool
    replica: str
    """The Ray actor (Serve replica) that ran it."""


def build_runners(
    components: Sequence[Mapping[str, Any]], max_batch_size: int, threads: int, optimize: bool
) -> dict[str, ComponentRunner]:
    """Component key → its ORT runner, from the node's plain component descriptions."""
    return {
        c["key"]: ComponentRunner(
            c["onnx"],
            c["outputs"],
            max_batch_size=max_batch_size,
            threads=threads,
            optimize=optimize,
        )
        for c in components
    }


class PaddedBatches:
    """Runs batches of a node's components, each padded to its target, up to ``threads`` at
    once. Its own pool, not asyncio's default one, whose min(32, cores + 4) threads would cap a
    node with more slots than that."""

    def __init__(self, runners: Mapping[str, Runs], threads: int, replica: str) -> None:
        self._runners = dict(runners)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="qsplit-batch")
        self._replica = replica

    async def run(self, key: str, feeds: list[Feeds], start: float, target_s: float) -> Ran:
        """Run ``feeds`` on component ``key`` and pad to ``start + target_s``."""
        received = time.time()
        loop = asyncio.get_running_loop()
        outputs = await loop.run_in_executor(self._pool, self._runners[key].run_many, feeds)
        computed = time.time()
        deadline = start + target_s
        if computed < deadline:
            await asyncio.sleep(deadline - computed)
        return Ran(
            outputs=outputs,
            received=received,
            start=start,
            end=time.time(),
            overrun=computed > deadline,
            replica=self._replica,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
