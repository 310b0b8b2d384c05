"""A plan served on Ray: shared nodes' components as Serve deployments, the device's in the
caller's process, and requests walked through the components' DAG.

Each component on a node other than the infrastructure's device becomes one Serve application
(``qsplit-<deployment id>-<component>``), its replicas placed by the custom resource named
after the node. A request launches every shared component as soon as its inputs are known *as
deployment responses*: Ray passes a producer's outputs to its consumer replica through the
object store, so data between shared nodes never comes back to the caller, and independent
branches run at once. Device components run in this process, fetching what they read when they
run. Requests are walked (:mod:`qsplit.serve._walk`, the walk the fleet's devices take too) on
the session's own event loop, whichever threads call it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from qsplit.errors import InputError, TransportError
from qsplit.infra import Infra
from qsplit.model import Preprocess
from qsplit.runtime import ComponentSpec, Deployment, InferResult, RequestRecord, load_deployment
from qsplit.serve import _ray
from qsplit.serve._runner import ComponentRunner
from qsplit.serve._walk import Feeds, Step, walk

_T = TypeVar("_T")


@dataclass(frozen=True)
class NodeServing:
    """How a shared node serves each of its components."""

    replicas: int = 1
    """Replicas per component (the autoscaling minimum when :attr:`max_replicas` is set)."""
    max_replicas: int | None = None
    """Autoscale each component between :attr:`replicas` and this many replicas."""
    max_batch_size: int = 1
    """Concurrent requests a replica runs as one batch (1: no batching)."""
    batch_wait_timeout_s: float = 0.005
    """How long a replica waits for a batch to fill once its first request arrived."""
    max_ongoing_requests: int | None = None
    """Requests a replica accepts at once (default: two batches, at least 8); more wait in
    Serve's router."""

    def __post_init__(self) -> None:
        problems = []
        if self.replicas < 1:
            problems.append("replicas must be at least 1")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            problems.append("max_replicas must be at least replicas")
        if self.max_batch_size < 1:
            problems.append("max_batch_size must be at least 1")
        if self.batch_wait_timeout_s < 0:
            problems.append("batch_wait_timeout_s must not be negative")
        if problems:
            raise InputError("; ".join(problems), field="serving", fix="give valid numbers")

    def options(self) -> dict[str, Any]:
        """The Serve deployment options these settings stand for (replica placement aside)."""
        # A replica must accept a full batch at once, and the next one while it runs.
        ongoing = {
            "max_ongoing_requests": self.max_ongoing_requests or max(8, 2 * self.max_batch_size)
        }
        if self.max_replicas is None:
            return {"num_replicas": self.replicas, **ongoing}
        scaling = {"min_replicas": self.replicas, "max_replicas": self.max_replicas}
        return {"autoscaling_config": scaling, **ongoing}


@dataclass(frozen=True)
class ReplicaReport:
    """Where a replica runs and how it has batched."""

    node_id: str
    """The Ray node id (``ray.get_runtime_context().get_node_id()``) of the replica."""
    batches: bool
    """Whether it runs concurrent requests as one batch (see :class:`ComponentRunner`)."""
    largest_batch: int
    """The most requests it has run at once so far."""


class RaySession:
    """A deployment served on Ray; use :func:`connect_ray`. Thread-safe: concurrent callers'
    requests share the replicas (and their batches).

    Requests are walked (:func:`~qsplit.serve._walk.walk`) on the session's own event loop, in
    a daemon thread from connect to close; callers block on their request's future. Ray Serve's
    handles route on a loop of their own, so a response can be awaited, or passed on to another
    call, from this one."""

    def __init__(
        self,
        deployment: Deployment,
        device: str,
        handles: Mapping[str, Any],
        local: Mapping[str, ComponentRunner],
        *,
        applications: tuple[str, ...],
        connection: _ray.Connection,
        timeout_s: float,
        holder: str,
    ) -> None:
        self.deployment = deployment
        self.device = device
        self._handles, self._local = handles, local
        self._steps = [
            Step(c.name, c.node, c.inputs, c.outputs, c.node != device)
            for c in deployment.components
        ]
        self._applications, self._connection = applications, connection
        self._holder = holder
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="qsplit-ray-session", daemon=True
        )
        self._thread.start()
        self._closed, self._closing = False, threading.Lock()

    def infer(self, feeds: Feeds, *, timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """The model's outputs for ``feeds``; a component that fails, or does not answer within
        ``timeout_s``, raises :class:`TransportError` naming its node."""
        return self._submit(self._walk(feeds, timeout_s)).result()

    def stream(
        self, requests: Iterable[Feeds], *, max_in_flight: int = 1, timeout_s: float | None = None
    ) -> Iterator[InferResult]:
        """Each request's outputs, in input order, with up to ``max_in_flight`` requests at once
        (concurrent requests are what a shared node's batches are made of). A record holds the
        end-to-end latency only: components' times and transfers are inside Ray."""
        window: deque[Future[InferResult]] = deque()
        try:
            for index, feeds in enumerate(requests):
                if len(window) == max_in_flight:
                    yield window.popleft().result()
                window.append(self._submit(self._timed(index, feeds, timeout_s)))
            while window:
                yield window.popleft().result()
        finally:  # a caller that stops early leaves nothing running
            for future in window:
                future.cancel()

    def _submit(self, walking: Coroutine[Any, Any, _T]) -> Future[_T]:
        with self._closing:  # what is submitted before close is cancelled by it
            if self._closed:
                walking.close()
                raise TransportError("the session is closed")
            return asyncio.run_coroutine_threadsafe(walking, self._loop)

    async def _walk(self, feeds: Feeds, timeout_s: float | None) -> dict[str, np.ndarray]:
        calls = _Calls(self._handles, self._local, timeout_s or self._timeout_s)
        return await walk(self._steps, feeds, self.deployment.model_outputs, calls)

    async def _timed(self, index: int, feeds: Feeds, timeout_s: float | None) -> InferResult:
        start = time.perf_counter()
        try:
            outputs, error = await self._walk(feeds, timeout_s), None
        except TransportError as exc:
            outputs, error = None, exc
        latency_s = time.perf_counter() - start
        record = RequestRecord(str(index), latency_s, (), (), None if error is None else str(error))
        return InferResult(index, outputs, record, error)

    def replicas(self) -> dict[str, ReplicaReport]:
        """Shared component → the report of one of its replicas (the one that answers)."""
        return {
            name: ReplicaReport(**handle.report.remote().result(timeout_s=self._timeout_s))
            for name, handle in self._handles.items()
        }

    def close(self) -> None:
        """Stop the session's requests and its loop; delete its Serve applications unless
        another session still uses them; stop Ray if this session started it, and disconnect if
        it joined a cluster."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
        asyncio.run_coroutine_threadsafe(_cancel_all(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        freed: list[str] = []
        if self._applications:
            from qsplit.serve import _leases

            freed = _leases.release(self._holder, self._applications)
        _ray.stop(self._connection, freed)

    def __enter__(self) -> RaySession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


async def _cancel_all() -> None:
    """Cancel every other task of the running loop and wait for them and its threads."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_default_executor()


@dataclass(frozen=True)
class _Calls:
    """How a session's request walks: shared components through their Serve handles, device
    components in the loop's threads, and a fetch that fails as :class:`TransportError`."""

    handles: Mapping[str, Any]
    local: Mapping[str, ComponentRunner]
    timeout_s: float

    async def launch(self, step: Step, own: Feeds, responses: Sequence[Any]) -> Any:
        return self.handles[step.name].remote(*responses, own)

    async def fetch(self, step: Step, response: Any, wanted: tuple[str, ...]) -> Mapping[str, Any]:
        try:
            async with asyncio.timeout(self.timeout_s) as deadline:
                result: Mapping[str, Any] = await response
        except Exception as exc:  # Ray's errors: a dead replica, a raising component, time
            # A replica's exception comes wrapped in Ray's RayTaskError, which holds it as cause.
            error = cause if isinstance(cause := getattr(exc, "cause", None), Exception) else exc
            if deadline.expired():
                reason = f"TimeoutError: no answer within {self.timeout_s} s"
            else:
                reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
            raise TransportError(
                f"component {step.name!r} on node {step.node!r} failed: {reason}", peer=step.node
            ) from exc
        return result

    async def run(self, step: Step, feeds: Feeds) -> Feeds:
        # ONNX Runtime releases the GIL: the loop goes on launching other requests' components.
        return await asyncio.to_thread(self.local[step.name].run, feeds)


def connect_ray(
    plan: str | Path | Deployment,
    infra: Infra,
    *,
    model: str | Path | None = None,
    address: str | None = None,
    serving: NodeServing | Mapping[str, NodeServing] | None = None,
    calibration: Any = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    preprocess: Preprocess | None = None,
    threads: int = 1,
    graph_optimization: str = "all",
    timeout_s: float = 60.0,
) -> RaySession:
    """Serve ``plan`` (a plan file with its ``model``, or a built deployment) on Ray.

    Components are extracted exactly as for agents (:func:`qsplit.runtime.load_deployment`,
    quantized blocks in int8). ``address`` joins a running cluster (``ray://…`` or
    ``HOST:PORT``), which must offer a resource named after each shared node; without it an
    embedded Ray offers them all. ``serving`` sets replicas and batching, for every shared node
    or per node name (nodes not named: :class:`NodeServing` defaults).
    """
    if isinstance(plan, Deployment):
        deployment = plan
    else:
        if model is None:
            raise InputError("a plan file needs its model", field="model", fix="pass model=PATH")
        deployment = load_deployment(
            plan,
            infra,
            model,
            calibration=calibration,
            input_shapes=input_shapes,
            preprocess=preprocess,
            agents=False,
        )
    optimize = graph_optimization == "all"
    shared = [c for c in deployment.components if c.node != infra.device]
    local = {
        c.name: ComponentRunner(c.onnx, c.outputs, threads=threads, optimize=optimize)
        for c in deployment.components
        if c.node == infra.device
    }
    nodes = sorted({c.node for c in shared})
    connection = _ray.start(address, nodes)
    # Devices running the same plan share its applications (their requests batch together):
    # each holds a lease, and an application goes with its last holder (serve/_leases.py).
    from qsplit.serve import _leases

    holder = f"session-{uuid.uuid4().hex}"
    targets = [
        ReplicaTarget(f"qsplit-{deployment.id}-{c.name}", c, _settings(serving, c.node))
        for c in shared
    ]
    applications = tuple(t.application for t in targets)
    try:
        _leases.acquire(holder, applications)
        handles = deploy_replicas(targets, threads, optimize)
    except BaseException:
        _ray.stop(connection, _leases.release(holder, applications))
        raise
    return RaySession(
        deployment,
        infra.device,
        dict(zip((c.name for c in shared), handles, strict=True)),
        local,
        applications=applications,
        connection=connection,
        timeout_s=timeout_s,
        holder=holder,
    )


@dataclass(frozen=True)
class ReplicaTarget:
    """One shared component to deploy as its own Serve application."""

    application: str
    component: ComponentSpec
    serving: NodeServing


def deploy_replicas(targets: list[ReplicaTarget], threads: int, optimize: bool) -> list[Any]:
    """Run each target as a Serve application of :class:`ComponentReplica` replicas placed by
    their node's resource, wait until all are running, and return their handles."""
    _, serve = _ray.import_ray()
    from ray.serve.api import RunTarget

    from qsplit.serve._replica import ComponentReplica

    runs = []
    for target in targets:
        component, settings = target.component, target.serving
        app = ComponentReplica.options(
            name=component.name,
            ray_actor_options={"num_cpus": 0, "resources": {component.node: _ray.REPLICA_SHARE}},
            **settings.options(),
        ).bind(
            component.onnx,
            component.inputs,
            component.outputs,
            settings.max_batch_size,
            settings.batch_wait_timeout_s,
            threads,
            optimize,
        )
        runs.append(RunTarget(app, name=target.application, route_prefix=None))
    return list(serve.run_many(runs)) if runs else []


def _settings(serving: NodeServing | Mapping[str, NodeServing] | None, node: str) -> NodeServing:
    if serving is None:
        return NodeServing()
    if isinstance(serving, NodeServing):
        return serving
    return serving.get(node, NodeServing())
