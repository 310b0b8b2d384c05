"""A shared node's replicas as a pool its components draw from.

The fleet planner models a node as ``replicas`` servers for *all* the components it hosts; Serve
gives every component (a deployment of its own) its own replicas. When a node hosts several
components, their replicas take a slot of the node's pool for each batch, so that no more than
``replicas`` batches run on the node at once, first come first served.

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
