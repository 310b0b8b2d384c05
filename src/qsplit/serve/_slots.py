"""A shared node's replicas as a pool its components draw from.

The fleet planner models a node as ``replicas`` servers and *one* FIFO queue of batches for all
the components it hosts; Serve gives every component (a deployment of its own) its own
replicas, and routes each request to one of them on arrival, where it would wait behind that
replica's batches only (per-replica queues: measured 4-5x the modelled wait at a 3-replica
node, docs/serve.md). So every replica of a node's components sends each batch it forms to the
node's pool, which runs ``replicas`` batches at once, first come first served: one queue, as
modelled.

Imported only once Ray is known to be there.
"""

from __future__ import annotations

import asyncio

import ray


@ray.remote(num_cpus=0)
class NodeSlots:
    """``slots`` batches at a time, granted in the order they were asked for."""

    def __init__(self, slots: int) -> None:
        self._free = asyncio.Semaphore(slots)

    async def acquire(self) -> None:
        await self._free.acquire()

    async def release(self) -> None:
        self._free.release()
