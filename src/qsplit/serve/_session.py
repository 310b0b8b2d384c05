"""A plan served on Ray: shared nodes' components as Serve deployments, the device's in the
caller's process, and requests walked through the components' DAG.

Each component on a node other than the infrastructure's device becomes one Serve application
(``qsplit-<deployment id>-<component>``), its replicas placed by the custom resource named
after the node. A request launches every shared component as soon as its inputs are known *as
deployment responses*: Ray passes a producer's outputs to its consumer replica through the
object store, so data between shared nodes never comes back to the caller, and independent
branches run at once. Device components run here, fetching what they read when they run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from qsplit.errors import InputError, TransportError
from qsplit.infra import Infra
from qsplit.model import Preprocess
from qsplit.runtime import (
    ComponentSpec,
    Deployment,
    InferResult,
    RequestRecord,
    load_deployment,
)
from qsplit.serve import _ray
from qsplit.serve._runner import ComponentRunner

Feeds = Mapping[str, np.ndarray]


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
    requests share the replicas (and their batches)."""

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
    ) -> None:
        self.deployment = deployment
        self.device = device
        self._handles, self._local = handles, local
        self._applications, self._connection = applications, connection
        self._timeout_s = timeout_s
        self._closed = False

    def infer(self, feeds: Feeds, *, timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """The model's outputs for ``feeds``; a component that fails raises
        :class:`TransportError` naming its node."""
        return _Request(self, dict(feeds), timeout_s or self._timeout_s).run()

    def stream(
        self, requests: Iterable[Feeds], *, max_in_flight: int = 1, timeout_s: float | None = None
    ) -> Iterator[InferResult]:
        """Each request's outputs, in input order, with up to ``max_in_flight`` requests at once
        (concurrent requests are what a shared node's batches are made of). A record holds the
        end-to-end latency only: components' times and transfers are inside Ray."""
        with ThreadPoolExecutor(max_in_flight) as pool:
            window: deque[Future[InferResult]] = deque()
            for index, feeds in enumerate(requests):
                if len(window) == max_in_flight:
                    yield window.popleft().result()
                window.append(pool.submit(self._timed, index, feeds, timeout_s))
            while window:
                yield window.popleft().result()

    def _timed(self, index: int, feeds: Feeds, timeout_s: float | None) -> InferResult:
        start = time.perf_counter()
        try:
            outputs, error = self.infer(feeds, timeout_s=timeout_s), None
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
        """Delete this session's Serve applications; stop Ray if this session started it, and
        disconnect if it joined a cluster."""
        if not self._closed:
            self._closed = True
            _ray.stop(self._connection, self._applications)

    def __enter__(self) -> RaySession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class _Request:
    """One request's walk through the components."""

    def __init__(self, session: RaySession, feeds: dict[str, np.ndarray], timeout_s: float):
        self._session, self._timeout_s = session, timeout_s
        self._known: dict[str, np.ndarray] = feeds
        self._pending: dict[str, Any] = {}  # tensor → response of the shared component making it
        self._producer: dict[int, ComponentSpec] = {}
        self._results: dict[int, dict[str, np.ndarray]] = {}

    def run(self) -> dict[str, np.ndarray]:
        waiting = list(self._session.deployment.components)
        while waiting:
            waiting = [c for c in waiting if not self._launch(c)]
            ready = next((c for c in waiting if self._runs_here(c) and self._ready(c)), None)
            if ready is None and waiting and not any(self._ready(c) for c in waiting):
                raise InputError(
                    f"component {waiting[0].name!r} reads a tensor nothing produces",
                    field="feeds",
                    fix="pass every model input the deployment names",
                )
            if ready is not None:
                self._run_here(ready)
                waiting.remove(ready)
        return {name: self._value(name) for name in self._session.deployment.model_outputs}

    def _runs_here(self, component: ComponentSpec) -> bool:
        return component.node == self._session.device

    def _ready(self, component: ComponentSpec) -> bool:
        return all(t in self._known or t in self._pending for t in component.inputs)

    def _launch(self, component: ComponentSpec) -> bool:
        """Send a shared component its inputs if all are known or on their way."""
        if self._runs_here(component) or not self._ready(component):
            return False
        responses = {id(r): r for t in component.inputs if (r := self._pending.get(t)) is not None}
        own = {t: self._known[t] for t in component.inputs if t in self._known}
        handle = self._session._handles[component.name]
        response = handle.remote(*responses.values(), own)
        self._producer[id(response)] = component
        for tensor in component.outputs:
            self._pending[tensor] = response
        return True

    def _run_here(self, component: ComponentSpec) -> None:
        feeds = {t: self._value(t) for t in component.inputs}
        self._known.update(self._session._local[component.name].run(feeds))

    def _value(self, tensor: str) -> np.ndarray:
        if tensor in self._known:
            return self._known[tensor]
        response = self._pending[tensor]
        key = id(response)
        if key not in self._results:
            component = self._producer[key]
            try:
                self._results[key] = response.result(timeout_s=self._timeout_s)
            except Exception as exc:  # Ray's errors: a dead replica, a raising component, time
                raise TransportError(
                    f"component {component.name!r} on node {component.node!r} failed: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                    peer=component.node,
                ) from exc
        return self._results[key][tensor]


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
    try:
        handles, applications = _deploy(deployment, shared, serving, threads, optimize)
    except BaseException:
        _ray.stop(connection, ())
        raise
    return RaySession(
        deployment,
        infra.device,
        handles,
        local,
        applications=applications,
        connection=connection,
        timeout_s=timeout_s,
    )


def _deploy(
    deployment: Deployment,
    shared: list[ComponentSpec],
    serving: NodeServing | Mapping[str, NodeServing] | None,
    threads: int,
    optimize: bool,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Run one Serve application per shared component and wait until all are running."""
    targets = [
        ReplicaTarget(f"qsplit-{deployment.id}-{c.name}", c, _settings(serving, c.node))
        for c in shared
    ]
    handles = deploy_replicas(targets, threads, optimize)
    return dict(zip((c.name for c in shared), handles, strict=True)), tuple(
        t.application for t in targets
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
