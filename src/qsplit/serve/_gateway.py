"""A gateway agent's engine: the components deployed on it run as Ray Serve applications.

Devices that cannot run Ray keep the light agent and its protocol (ZeroMQ, CURVE, tokens,
limits); the shared node they offload to is an agent too — ``qsplit agent --backend ray`` —
whose components are not run in its own ONNX Runtime but handed to Serve, placed by the
custom resource named after the node, with replicas, autoscaling and batching
(:class:`~qsplit.serve.NodeServing`). Every requester that deploys the same component bytes on
the gateway shares one Serve application, so requests of many devices batch together there,
as the fleet planner's one batcher per component has them.

A gateway may also front a fleet's shared node (:class:`FleetNodeHost`): then the components
are not deployed anew but run by the node's Serve application, with the batchers and slots
that the fleet's Ray-actor device classes call too, so every class's requests meet in one
queue, as the fleet planner prices it.

Imported only by a gateway (Ray is then required).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsplit.errors import InputError
from qsplit.runtime import ComponentSpec
from qsplit.serve import _ray
from qsplit.serve._emulation import TRACE
from qsplit.serve._session import NodeServing, ReplicaTarget, deploy_replicas


@dataclass(frozen=True)
class _Served:
    """One deploy of a component: its Serve application (shared by every deploy of the same
    bytes, in this gateway or another) and this deploy's lease on it."""

    key: tuple[str, bool]
    """Its bytes' sha256 and whether ORT optimises it: what deploys share."""
    application: str
    handle: Any
    timeout_s: float
    holder: str

    def run(self, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return self.handle.remote(dict(feeds)).result(timeout_s=self.timeout_s)


@dataclass
class ServeHost:
    """Runs a gateway agent's components on Ray Serve (:class:`qsplit.runtime.ComponentHost`).

    ``node``: the agent's node name, the custom resource its replicas are placed by;
    ``address``: a Ray cluster to join (default: an embedded Ray offering ``node``);
    ``serving``: replicas, autoscaling and batching of every component; ``timeout_s``: how long
    one call may take before the request fails (Ray's error, reported to the requester).
    """

    node: str
    address: str | None = None
    serving: NodeServing = field(default_factory=NodeServing)
    threads: int = 1
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        self._connection = _ray.start(self.address, [self.node])
        self._handles: dict[tuple[str, bool], Any] = {}
        self._held: dict[str, _Served] = {}
        self._lock = threading.Lock()

    def load(
        self,
        name: str,
        onnx_bytes: bytes,
        sha256: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        optimize: bool,
    ) -> _Served:
        from qsplit.serve import _leases

        # Deploys of one component by several requesters share its application: each holds a
        # lease (serve/_leases.py), and one lock keeps two arriving at once from both starting it.
        key = (sha256, optimize)
        application = f"qsplit-gw-{self.node}-{sha256[:16]}{'' if optimize else '-raw'}"
        holder = f"gateway-{uuid.uuid4().hex}"
        with self._lock:
            _leases.acquire(holder, [application])
            handle = self._handles.get(key)
            if handle is None:
                spec = ComponentSpec(
                    name, self.node, tuple(inputs), tuple(outputs), onnx_bytes, sha256, {}, ()
                )
                target = ReplicaTarget(application, spec, self.serving)
                try:
                    (handle,) = deploy_replicas([target], self.threads, optimize)
                except BaseException:
                    _leases.release(holder, [application])
                    raise
                self._handles[key] = handle
            served = _Served(key, application, handle, self.timeout_s, holder)
            self._held[holder] = served
            return served

    def release(self, component: _Served) -> None:
        from qsplit.serve import _leases

        _, serve = _ray.import_ray()
        with self._lock:
            self._held.pop(component.holder, None)
            if _leases.release(component.holder, [component.application]):
                self._handles.pop(component.key, None)
                serve.delete(component.application, _blocking=False)

    def close(self) -> None:
        from qsplit.serve import _leases

        with self._lock:
            held = list(self._held.values())
            self._held.clear()
            self._handles.clear()
        freed = {a for s in held for a in _leases.release(s.holder, [s.application])}
        _ray.stop(self._connection, sorted(freed))


@dataclass(frozen=True)
class _FleetComponent:
    """A component a fleet node's front runs under ``key``."""

    handle: Any
    key: str
    timeout_s: float

    def run(self, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        outputs = self.handle.remote(self.key, dict(feeds)).result(timeout_s=self.timeout_s)
        return {k: v for k, v in outputs.items() if not k.startswith(TRACE)}


@dataclass
class FleetNodeHost:
    """Runs a gateway agent's components on a fleet's shared node
    (:class:`qsplit.runtime.ComponentHost`): ``application`` is the node's Serve application
    (``qsplit.serve.FleetServing`` names them ``qsplit-fleet-<id>-<node>``), whose front already
    serves every component of the fleet plan; a deploy is matched to one of them by its bytes'
    digest, and a component the node does not serve is refused. ``timeout_s``: how long a call
    may wait in the node's queue and run (as long as an agent keeps a request open: an
    overloaded node's queue is measured, not cut).
    """

    node: str
    application: str
    address: str | None = None
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        self._connection = _ray.start(self.address, [self.node])

    def load(
        self,
        name: str,
        onnx_bytes: bytes,
        sha256: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        optimize: bool,
    ) -> _FleetComponent:
        _, serve = _ray.import_ray()
        # Looked up at each deploy: the gateway may start while the node deploys, and a fleet
        # testbed's node is deployed anew, under the same name, for each of its runs.
        front = serve.get_deployment_handle(self.node, self.application, _check_exists=False)
        try:
            key = front.key_of.remote(sha256).result(timeout_s=self.timeout_s)
        except Exception as exc:  # Ray's own: no such application, or it failed
            raise InputError(
                f"the fleet node {self.node!r} ({self.application}) did not answer: {exc}",
                field="--fleet-app",
                fix="name the Serve application of a running fleet node "
                "(qsplit-fleet-<id>-<node>), on the Ray of --ray-address",
            ) from None
        if key is None:
            raise InputError(
                f"component {name!r} (sha256 {sha256[:12]}…) is not one the fleet node "
                f"{self.node!r} ({self.application}) serves",
                field="--fleet-app",
                fix="deploy the fleet plan's own components (the plan the node was started "
                "with), or start this gateway without --fleet-app",
            )
        return _FleetComponent(front, key, self.timeout_s)

    def release(self, component: _FleetComponent) -> None:
        """Nothing to undo: the fleet node's components live as long as its run."""

    def close(self) -> None:
        _ray.stop(self._connection, ())
