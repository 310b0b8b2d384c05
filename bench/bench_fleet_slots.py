"""What taking and giving back a slot of a shared node costs a batch on the Ray path.

A fleet run's shared node serves its batches on ``replicas`` slots, one FIFO queue
(docs/serve.md, *Serving a fleet*). Two ways of holding the slots are timed, each from inside
a Ray actor's event loop, as a replica runs a batch:

* ``actor``: the slots in a Ray actor of their own (``acquire`` and ``release`` awaited as
  actor calls) — how the served node held them before this benchmark (``fleetq`` branch),
  kept here as the baseline;
* ``in-process``: an ``asyncio.Semaphore`` in the replica that forms the batches (the node's
  one :class:`~qsplit.serve._node.NodeReplica`) — how it holds them now.

Per batch it prints the median and p90 of the time to take a free slot (part of the wait the
fleet run measures) and to give it back (time the slot stays held after the batch's end), and
their sum, over ``--batches`` batches one after the other (no contention: the cost itself).

Usage: PYTHONPATH=src /work/venvs/ray/bin/python bench/bench_fleet_slots.py [--batches 300]
[--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray

from _output import emit_json


@ray.remote(num_cpus=0)
class ActorSlots:
    """The previous design: ``slots`` batches at a time, granted by actor calls."""

    def __init__(self, slots: int) -> None:
        self._free = asyncio.Semaphore(slots)

    async def acquire(self) -> None:
        await self._free.acquire()

    async def release(self) -> None:
        self._free.release()


@ray.remote(num_cpus=0)
class Batcher:
    """Stands in for a replica: times taking and giving back a slot around each batch."""

    async def time_actor(self, slots: Any, batches: int) -> list[tuple[float, float]]:
        times = []
        for _ in range(batches):
            started = time.perf_counter()
            await slots.acquire.remote()
            taken = time.perf_counter()
            await slots.release.remote()
            times.append((taken - started, time.perf_counter() - taken))
        return times

    async def time_in_process(self, batches: int) -> list[tuple[float, float]]:
        slots = asyncio.Semaphore(3)
        times = []
        for _ in range(batches):
            started = time.perf_counter()
            await slots.acquire()
            taken = time.perf_counter()
            slots.release()
            times.append((taken - started, time.perf_counter() - taken))
        return times


def summary(times: list[tuple[float, float]]) -> dict[str, float]:
    values = np.array(times) * 1e3
    total = values.sum(axis=1)
    return {
        "take_median_ms": round(float(np.median(values[:, 0])), 4),
        "give_back_median_ms": round(float(np.median(values[:, 1])), 4),
        "per_batch_median_ms": round(float(np.median(total)), 4),
        "per_batch_p90_ms": round(float(np.percentile(total, 90)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    try:
        batcher = Batcher.remote()
        slots = ActorSlots.remote(3)
        ray.get([batcher.__ray_ready__.remote(), slots.__ray_ready__.remote()])
        ray.get(batcher.time_actor.remote(slots, 20))  # warm both paths up
        actor = ray.get(batcher.time_actor.remote(slots, args.batches))
        local = ray.get(batcher.time_in_process.remote(args.batches))
    finally:
        ray.shutdown()
    emit_json(
        {
            "machine": f"{platform.node()} ({os.cpu_count()} cores), ray {ray.__version__}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "batches": args.batches,
            "actor": summary(actor),
            "in-process": summary(local),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
