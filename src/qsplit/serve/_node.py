"""A shared node of a fleet run: one Serve replica, the node's *front*, holding every component
the node hosts, each with its own batcher, and the node's replicas as slots of one FIFO queue
of batches; each slot's batch runs in the front or on a deployment of worker replicas.

The fleet planner models a node as ``c`` servers behind *one* FIFO queue of batches for all
the components it hosts, each component's requests batched together whichever class sent them
(docs/fleet.md). Serving each component as its own deployment of ``c`` replicas gave ``c``
queues (Serve routes a request to a replica on arrival), and a pool of slots in a Ray actor
that joined them cost two actor calls per batch, 5-10 ms each on a loaded host
(docs/BENCHMARKS.md); batches also formed per replica, at ``1/c`` of a component's rate. Here
the node's ``c`` slots are an ``asyncio.Semaphore`` in the front: taking one costs nothing,
waiters are served first come first served (CPython ≥ 3.11.1), and a component's batcher sees
all its requests. What a slot's batch runs on is :class:`~qsplit.serve._scaling.NodeScaling`:

- *in-process*: the front's own threads, one per slot (an emulated batch only sleeps to its
  target after the host's real compute, so one process holds ``c`` batches at once — the way a
  Triton instance group serves one batcher with ``c`` model instances);
- *fixed* or *autoscale*: a :class:`NodeWorker` deployment in the node's application, ``c``
  replicas or as many as Serve's autoscaler keeps, each running one batch at a time; the front
  calls it through a deployment handle, so a batch whose slot found every worker busy waits in
  the handle's router, and that wait is queueing, measured as such.

Imported only once Ray is known to be there.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from qsplit.serve._batches import Feeds, PaddedBatches, Ran, build_runners
from qsplit.serve._emulation import LINKS, TRACE, batch_target_s, route_s, tensor_bytes
from qsplit.serve._ray import REPLICA_SHARE
from qsplit.serve._scaling import WORKERS, NodeScaling

Request = tuple[Feeds, float]
"""A request in a batcher: the tensors its component reads, and when it arrived (epoch s)."""

CONCURRENT_BATCHES = 1_000
"""Batches a component's batcher may have in flight: every batch it closes goes straight to
the node's queue of slots, which bounds what runs."""

BATCH_LOG = 100_000
"""Batches a front remembers for :meth:`NodeReplica.batches` (hours of a fleet run)."""


@dataclass(frozen=True)
class _Component:
    inputs: frozenset[str]
    compute_s: float
    """The node's batch-1 time of the component."""
    fixed_fraction: float
    """The part of it a batch shares (``qsplit.fleet.BatchProfile``)."""


@serve.deployment
class NodeReplica:
    """The front of one shared node. A call names the component (its ``key``) and passes
    the tensors it reads as dicts of name → array — the outputs of its producers (deployment
    responses, which Ray resolves replica to replica through the object store) and the
    caller's own — plus a :data:`LINKS` part: the planned links of inputs that come from other
    shared nodes, which the node waits out before the request joins its component's batcher.

    ``components``: per component ``{"key", "onnx", "inputs", "outputs", "compute_s",
    "fixed_fraction", "sha256s"}``, plain values; ``sha256s`` are the digests of the ONNX
    bytes device classes deploy for it on a gateway agent (:meth:`key_of`). Each batch waits
    for one of the node's ``slots``, runs (here, or on ``workers`` when given: the node's
    :class:`NodeWorker` deployment), and is padded to the node's time for its size; every
    request's outputs get a :data:`TRACE` entry (its wait for the batch to close, its batch's
    wait for a server, the batch and the replica that ran it), passed on with those of the
    nodes before it so that the caller receives the request's whole trace."""

    def __init__(
        self,
        node: str,
        components: Sequence[Mapping[str, Any]],
        slots: int,
        max_batch_size: int,
        batch_wait_timeout_s: float,
        threads: int,
        optimize: bool,
        workers: DeploymentHandle | None = None,
    ) -> None:
        self._node = node
        self._slots = asyncio.Semaphore(slots)
        self._batches = 0
        self._local = (
            None
            if workers is not None
            else PaddedBatches(
                build_runners(components, max_batch_size, threads, optimize),
                slots,
                ray.get_runtime_context().get_actor_id() or "",
            )
        )
        self._run = self._local.run if self._local is not None else partial(_on_worker, workers)
        self._components: dict[str, _Component] = {}
        self._keys = {sha: c["key"] for c in components for sha in c.get("sha256s", ())}
        self._log: deque[dict[str, Any]] = deque(maxlen=BATCH_LOG)
        self._batchers: dict[str, Callable[[Request], Awaitable[tuple[Feeds, Any]]]] = {}
        for c in components:
            self._components[c["key"]] = _Component(
                frozenset(c["inputs"]), c["compute_s"], c["fixed_fraction"]
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

    def key_of(self, sha256: str) -> str | None:
        """The component a gateway agent runs here for deployed bytes of this digest (``None``:
        the node serves no such component)."""
        return self._keys.get(sha256)

    def batches(self) -> list[dict[str, Any]]:
        """Every batch run so far (the latest :data:`BATCH_LOG`), whoever sent its requests:
        the node's own record of its busy time and batch sizes."""
        return list(self._log)

    def _batcher(self, key: str) -> Any:
        async def batch(requests: list[Request]) -> list[tuple[Feeds, dict[str, Any]]]:
            return await self._batch(key, requests)

        return batch

    async def _batch(self, key: str, requests: list[Request]) -> list[tuple[Feeds, dict[str, Any]]]:
        closed = time.time()
        component = self._components[key]
        target_s = batch_target_s(component.compute_s, component.fixed_fraction, len(requests))
        feeds = [f for f, _ in requests]
        async with self._slots:
            ran = await self._run(key, feeds, time.time(), target_s)
        returned = time.time()
        # Counted here, not by the workers: batch ids stay unique per node.
        self._batches += 1
        run = {
            "node": self._node,
            "replica": ran["replica"],
            "batch": self._batches,
            "received": ran["received"],
            "start": ran["start"],
            "end": ran["end"],
            "returned": returned,
            "target_s": target_s,
            "size": len(requests),
            "overrun": ran["overrun"],
        }
        self._log.append(run)
        return [
            (out, {**run, "wait_s": ran["start"] - closed, "forming_s": closed - arrived})
            for out, (_, arrived) in zip(ran["outputs"], requests, strict=True)
        ]

    def __del__(self) -> None:
        if self._local is not None:
            self._local.close()


@serve.deployment
class NodeWorker:
    """A worker replica of one shared node: runners for all its components, one batch at a time
    (``max_ongoing_requests=1``), each padded to the node's time for it.

    A batch's server takes it at ``max(slot, free)``: when the front's slot started, or, if
    later, when this worker finished its previous batch (it waited in the router meanwhile, a
    wait the front counts as queueing). The hop from the front to this worker falls inside the
    padding, not after it, as long as the host computes the batch in time; the hop back adds to
    the requests' latency."""

    def __init__(
        self,
        components: Sequence[Mapping[str, Any]],
        max_batch_size: int,
        threads: int,
        optimize: bool,
    ) -> None:
        self._batches = PaddedBatches(
            build_runners(components, max_batch_size, threads, optimize),
            1,
            ray.get_runtime_context().get_actor_id() or "",
        )
        self._free = time.time()

    async def run(self, key: str, feeds: list[Feeds], slot: float, target_s: float) -> Ran:
        ran = await self._batches.run(key, feeds, max(slot, self._free), target_s)
        self._free = ran["end"]
        return ran

    def __del__(self) -> None:
        self._batches.close()


async def _on_worker(
    workers: DeploymentHandle, key: str, feeds: list[Feeds], slot: float, target_s: float
) -> Ran:
    """The batch run on one of the node's workers, given the moment its slot started (the
    worker takes it from then, or from when it got free, if later)."""
    ran: Ran = await workers.run.remote(key, feeds, slot, target_s)
    return ran


def deploy_nodes(targets: Sequence[tuple[str, Mapping[str, Any]]], scaling: NodeScaling) -> None:
    """Run each ``(application, arguments of NodeReplica)`` as a Serve application placed by
    its node's resource: the front, one replica accepting every request (they queue at the
    node, where their wait is measured), and with ``scaling.workers`` the node's worker
    deployment; wait until all are running."""
    from ray.serve.api import RunTarget

    runs = [
        RunTarget(_front(arguments, scaling), name=application, route_prefix=None)
        for application, arguments in targets
    ]
    if runs:
        serve.run_many(runs)


def _front(arguments: Mapping[str, Any], scaling: NodeScaling) -> Any:
    node = arguments["node"]
    placement: dict[str, Any] = {
        # Deleted once its requests are done: no need to wait 2 s between checks.
        "graceful_shutdown_wait_loop_s": 0.1,
        "ray_actor_options": {"num_cpus": 0, "resources": {node: REPLICA_SHARE}},
    }
    workers = None
    if scaling.workers:
        workers = NodeWorker.options(
            name=node + WORKERS,
            max_ongoing_requests=1,
            **placement,
            **scaling.worker_options(arguments["slots"]),
        ).bind(
            arguments["components"],
            arguments["max_batch_size"],
            arguments["threads"],
            arguments["optimize"],
        )
    return NodeReplica.options(
        name=node, num_replicas=1, max_ongoing_requests=100_000, **placement
    ).bind(**arguments, workers=workers)
