"""A fleet plan served for real devices: its shared nodes on Ray at their own speed, and the
sessions of devices that run Ray.

:func:`serve_fleet` deploys each shared node of a fleet plan as the Serve application its
emulated runs use (:class:`~qsplit.serve._node.NodeReplica`: one batcher per component across
classes, the node's replicas as slots of one FIFO queue), without padding: batches take what
they take. Its name comes from the plan (:func:`fleet_applications`), so every process that
holds the plan finds it:

- a device that runs Ray opens :func:`connect_fleet` for its class: its own components run in
  its process, the shared ones are calls of the nodes' components;
- a device that keeps the light agent deploys its class's plan through a gateway agent per
  shared node, ``qsplit agent --backend ray --fleet-app <application>``
  (:class:`~qsplit.serve.FleetNodeHost`), e.g. ``qsplit run fleet-plan.json --fleet-class
  NAME``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from qsplit.errors import InputError
from qsplit.fleet import Fleet, FleetDeployment
from qsplit.model import analyze
from qsplit.serve import _ray
from qsplit.serve._fleet_parts import (
    class_components,
    class_deployment,
    component_key,
    node_arguments,
)
from qsplit.serve._fleet_parts import shared_components as find_shared
from qsplit.serve._runner import ComponentRunner
from qsplit.serve._scaling import NodeScaling
from qsplit.serve._session import RaySession


def fleet_applications(
    deployment: FleetDeployment, quantized: Collection[str] = ()
) -> dict[str, str]:
    """Shared node → the Serve application serving it for ``deployment``: named after the
    plan's content (each class's assignment, each node's replicas and batching, the int8
    blocks), so that the nodes and every device compute the same names."""
    content = {
        "classes": [[c.name, sorted(c.assignment.items())] for c in deployment.classes],
        "shared": [[s.node, s.replicas, s.batch_size, s.batch_wait_s] for s in deployment.shared],
        "quantized": sorted(quantized),
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]
    return {s.node: f"qsplit-fleet-{digest}-{s.node}" for s in deployment.shared}


class ServedFleet:
    """A fleet plan's shared nodes running on Ray (from :func:`serve_fleet`), until
    :meth:`close`."""

    def __init__(self, applications: Mapping[str, str], connection: _ray.Connection) -> None:
        self.applications = dict(applications)
        """Shared node → its Serve application (what a gateway's ``--fleet-app`` names)."""
        self._connection = connection
        self._closed = False

    def close(self) -> None:
        """Delete the nodes' applications; stop Ray if this started it."""
        if not self._closed:
            self._closed = True
            _ray.stop(self._connection, tuple(self.applications.values()))

    def __enter__(self) -> ServedFleet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def serve_fleet(
    deployment: FleetDeployment,
    fleet: Fleet,
    *,
    model: str | Path,
    address: str | None = None,
    scaling: NodeScaling | None = None,
    quantized: Collection[str] = (),
    calibration: Any = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    threads: int = 1,
    graph_optimization: str = "all",
) -> ServedFleet:
    """Serve ``deployment``'s shared nodes on Ray (``address``: a cluster offering a resource
    named after each; default an embedded Ray), at their own speed; ``scaling`` runs each
    node's batches on worker replicas, fixed or autoscaled (default: in the node's replica)."""
    scaling = scaling or NodeScaling()
    for s in deployment.shared:
        scaling.check(s.node, s.replicas)
    _, graph = analyze(str(model), dict(input_shapes) if input_shapes else None)
    built = {
        c.name: class_deployment(
            c, fleet, model, quantized=quantized, calibration=calibration, input_shapes=input_shapes
        )
        for c in deployment.classes
    }
    shared = find_shared(deployment, built, graph, set(quantized), lambda node, blocks: 0.0)
    applications = fleet_applications(deployment, quantized)
    applications = {n: a for n, a in applications.items() if any(n == k for k, _ in shared)}
    optimize = graph_optimization == "all"
    arguments = node_arguments(shared, deployment, applications, threads, optimize, emulated=False)
    connection = _ray.start(address, fleet.shared_names)
    try:
        from qsplit.serve._node import deploy_nodes

        deploy_nodes(arguments, scaling)
    except BaseException:
        _ray.stop(connection, tuple(applications.values()))
        raise
    return ServedFleet(applications, connection)


@dataclass(frozen=True)
class _Keyed:
    """A node front's handle bound to one of its components: called as a component's own."""

    handle: Any
    key: str

    def remote(self, *parts: Any) -> Any:
        return self.handle.remote(self.key, *parts)


def connect_fleet(
    deployment: FleetDeployment,
    fleet: Fleet,
    device_class: str,
    *,
    model: str | Path,
    address: str | None = None,
    quantized: Collection[str] = (),
    calibration: Any = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    threads: int = 1,
    graph_optimization: str = "all",
    timeout_s: float = 60.0,
) -> RaySession:
    """A session of one device of ``device_class`` on a fleet served by :func:`serve_fleet`
    (the same plan, on the Ray at ``address``): its components run here, the shared ones on
    the nodes, in the batchers every class's requests share."""
    entry = deployment.device_class(device_class)
    if entry.runtime != "ray":
        raise InputError(
            f"class {device_class!r} keeps the light agent (runtime: agent): it reaches the "
            "fleet through gateway agents, not Ray",
            file=deployment.source,
            field="device_class",
            fix="run its devices' plans through `qsplit agent --backend ray --fleet-app` "
            "gateways (`qsplit run … --fleet-class`), or give it `runtime: ray`",
        )
    _, graph = analyze(str(model), dict(input_shapes) if input_shapes else None)
    built = class_deployment(
        entry, fleet, model, quantized=quantized, calibration=calibration, input_shapes=input_shapes
    )
    applications = fleet_applications(deployment, quantized)
    optimize = graph_optimization == "all"
    local, keys = {}, {}
    for spec, blocks in class_components(built, graph, entry):
        if spec.node == device_class:
            local[spec.name] = ComponentRunner(
                spec.onnx, spec.outputs, threads=threads, optimize=optimize
            )
        else:
            keys[spec.name] = (spec.node, applications[spec.node], component_key(blocks, quantized))
    ray, serve = _ray.import_ray()
    if address is None and not ray.is_initialized():
        raise InputError(
            "a fleet device joins the Ray that serves the fleet",
            field="address",
            fix="pass address=HOST:PORT of that cluster (`qsplit fleet serve` prints it)",
        )
    connection = _ray.start(address, sorted({node for node, _, _ in keys.values()}))
    running = set(serve.status().applications)
    missing = sorted({application for _, application, _ in keys.values()} - running)
    if missing:
        _ray.stop(connection, ())
        raise InputError(
            f"the fleet plan's shared nodes are not served on this Ray (no application "
            f"{', '.join(missing)})",
            field="address",
            fix="start `qsplit fleet serve` with the same plan (and int8 blocks), or pass the "
            "address of the cluster that serves it",
        )
    handles = {
        name: _Keyed(serve.get_deployment_handle(node, application), key)
        for name, (node, application, key) in keys.items()
    }
    return RaySession(
        built,
        device_class,
        handles,
        local,
        applications=(),
        connection=connection,
        timeout_s=timeout_s,
        holder=f"fleet-device-{device_class}",
    )
