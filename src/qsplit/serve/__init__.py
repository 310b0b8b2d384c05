"""Serving a plan on Ray Serve: each component of a shared node (edge, cloud) is a Serve
deployment placed by the custom resource named after its node, with replicas and dynamic
batching; the device's components run in the caller's process.

``with qsplit.serve.connect_ray(plan, infra, model=path) as s: outputs = s.infer(feeds)``;
docs/serve.md says how it works and how to run it on a cluster. Ray is optional
(``pip install 'qsplit[ray]'``): this package imports without it and raises
:class:`~qsplit.errors.DependencyError` when a session needs it.
"""

from qsplit.serve._fleet import FleetRun, FleetServing, run_fleet
from qsplit.serve._fleet_nodes import ServedFleet, connect_fleet, fleet_applications, serve_fleet
from qsplit.serve._gateway import FleetNodeHost, ServeHost
from qsplit.serve._measure import FleetBatch, FleetMeasurement, FleetRequest
from qsplit.serve._ray import check_resources, import_ray, start_embedded
from qsplit.serve._runner import ComponentRunner, widen_batch
from qsplit.serve._scaling import NodeScaling
from qsplit.serve._session import NodeServing, RaySession, ReplicaReport, connect_ray

__all__ = [
    "ComponentRunner",
    "FleetBatch",
    "FleetMeasurement",
    "FleetNodeHost",
    "FleetRequest",
    "FleetRun",
    "FleetServing",
    "NodeScaling",
    "NodeServing",
    "RaySession",
    "ReplicaReport",
    "ServeHost",
    "ServedFleet",
    "check_resources",
    "connect_fleet",
    "connect_ray",
    "fleet_applications",
    "import_ray",
    "run_fleet",
    "serve_fleet",
    "start_embedded",
    "widen_batch",
]
