"""A shared node of a fleet run, emulated as one Serve replica: every component the node hosts,
each with its own batcher, and the node's replicas as slots of one FIFO queue of batches.

The fleet planner models a node as ``c`` servers behind *one* FIFO queue of batches for all
the components it hosts, each component's requests batched together whichever class sent them
(docs/fleet.md). Serving each component as its own deployment of ``c`` replicas gave ``c``
queues (Serve routes a request to a replica on arrival), and a pool of slots in a Ray actor
that joined them cost two actor calls per batch, 5-10 ms each on a loaded host
(docs/BENCHMARKS.md); batches also formed per replica, at ``1/c`` of a component's rate. Here
the node's ``c`` slots are an ``asyncio.Semaphore`` in the one replica: taking one costs
nothing, waiters are served first come first served (CPython ≥ 3.11.1), and a component's
batcher sees all its requests. An emulated batch only sleeps to its target after the host's
real compute (ORT, in a thread), so one process holds ``c`` batches at once — the way a
Triton instance group serves one batcher with ``c`` model instances.

Imported only once Ray is known to be there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray import serve

from qsplit.serve._emulation import LINKS, TRACE, batch_target_s, route_s, tensor_bytes
from qsplit.serve._ray import REPLICA_SHARE
from qsplit.serve._runner import ComponentRunner

Feeds = dict[str, np.ndarray]
Request = tuple[Feeds, float]
"""A request in a batcher: the tensors its component reads, and when it arrived (epoch s)."""

CONCURRENT_BATCHES = 1_000
"""Batches a component's batcher may have in flight: every batch it closes goes straight to
the node's queue of slots, which bounds what runs."""


@dataclass(frozen=True)
class _Component:
    runner: ComponentRunner
    inputs: frozenset[str]
    compute_s: float
    """The node's batch-1 time of the component."""
    fixed_fraction: float
    """The part of it a batch shares (``qsplit.fleet.BatchProfile``)."""


@serve.deployment
class NodeReplica:
    """The components of one shared node. A call names the component (its ``key``) and passes
    the tensors it reads as dicts of name → array — the outputs of its producers (deployment
    responses, which Ray resolves replica to replica through the object store) and the
    caller's own — plus a :data:`LINKS` part: the planned links of inputs that come from other
    shared nodes, which the node waits out before the request joins its component's batcher.

    ``components``: per component ``{"key", "onnx", "inputs", "outputs", "compute_s",
    "fixed_fraction"}``, plain values. Each batch waits for one of the node's ``slots``, runs,
    and is padded to the node's time for its size; every request's outputs get a :data:`TRACE`
    entry (its wait for the batch to close, its batch's wait for a slot, the batch), passed on
    with those of the nodes before it so that the caller receives the request's whole trace."""

    def __init__(
        self,
        node: str,
        components: Sequence[Mapping[str, Any]],
        slots: int,
        max_batch_size: int,
        batch_wait_timeout_s: float,
        threads: int,
        optimize: bool,
    ) -> None:
        self._node = node
        self._slots = asyncio.Semaphore(slots)
        self._replica = ray.get_runtime_context().get_actor_id() or ""
        self._batches = 0
        self._components: dict[str, _Component] = {}
        self._batchers: dict[str, Callable[[Request], Awaitable[tuple[Feeds, Any]]]] = {}
        for c in components:
            runner = ComponentRunner(
                c["onnx"],
                c["outputs"],
                max_batch_size=max_batch_size,
                threads=threads,
                optimize=optimize,
            )
            self._components[c["key"]] = _Component(
                runner, frozenset(c["inputs"]), c["compute_s"], c["fixed_fraction"]
            )
            # One batch queue per component (serve.batch keeps its queue per wrapper). A
            # component whose graph cannot take a batch still forms the planned batches and
            # runs them one request at a time, padded to the batch's time, as the model prices.
            self._batchers[c["key"]] = serve.batch(
                max_batch_size=max_batch_size,
                batch_wait_timeout_s=batch_wait_timeout_s,
                max_concurrent_batches=CONCURRENT_BATCHES,
            )(self._batcher(c["key"]))

    async def __call__(self, key: str, *parts: Mapping[str, Any]) -> dict[str, Any]:
        component = self._components[key]
        feeds = {k: v for part in parts for k, v in part.items() if k in component.inputs}
        trace = {k: v for part in parts for k, v in part.items() if k.startswith(TRACE)}
        links = [group for part in parts for group in part.get(LINKS, ())]
        # Inputs from other shared nodes arrive when their slowest link delivers them.
        await asyncio.sleep(max((route_s(h, tensor_bytes(feeds, t)) for t, h in links), default=0))
        outputs, run = await self._batchers[key]((feeds, time.time()))
        return {**outputs, **trace, TRACE + key: run}

    def _batcher(self, key: str) -> Any:
        async def batch(requests: list[Request]) -> list[tuple[Feeds, dict[str, Any]]]:
            return await self._batch(key, requests)

        return batch

    async def _batch(self, key: str, requests: list[Request]) -> list[tuple[Feeds, dict[str, Any]]]:
        closed = time.time()
        async with self._slots:
            started = time.time()
            outputs, overrun = await self._run_padded(self._components[key], requests)
            ended = time.time()
        self._batches += 1
        run = {
            "node": self._node,
            "replica": self._replica,
            "batch": self._batches,
            "start": started,
            "end": ended,
            "size": len(requests),
            "overrun": overrun,
        }
        return [
            (out, {**run, "wait_s": started - closed, "forming_s": closed - arrived})
            for out, (_, arrived) in zip(outputs, requests, strict=True)
        ]

    @staticmethod
    async def _run_padded(
        component: _Component, requests: list[Request]
    ) -> tuple[list[Feeds], bool]:
        """The batch's outputs, at the node's time for it; whether the host took longer than
        that (an overrun)."""
        started = time.time()
        # ORT releases the GIL: the replica keeps receiving and runs the node's other batches.
        outputs = await asyncio.to_thread(component.runner.run_many, [f for f, _ in requests])
        ran_s = time.time() - started
        target_s = batch_target_s(component.compute_s, component.fixed_fraction, len(requests))
        if ran_s < target_s:
            await asyncio.sleep(target_s - ran_s)
        return outputs, ran_s > target_s


def deploy_nodes(targets: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Run each ``(application, arguments of NodeReplica)`` as a Serve application of one
    replica placed by its node's resource, accepting every request (they queue at the node,
    where their wait is measured), and wait until all are running."""
    from ray.serve.api import RunTarget

    runs = [
        RunTarget(
            NodeReplica.options(
                name=arguments["node"],
                num_replicas=1,
                max_ongoing_requests=100_000,
                # Deleted once its requests are done: no need to wait 2 s between checks.
                graceful_shutdown_wait_loop_s=0.1,
                ray_actor_options={
                    "num_cpus": 0,
                    "resources": {arguments["node"]: REPLICA_SHARE},
                },
            ).bind(**arguments),
            name=application,
            route_prefix=None,
        )
        for application, arguments in targets
    ]
    if runs:
        serve.run_many(runs)
