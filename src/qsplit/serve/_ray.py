"""Ray's lifecycle for qsplit: import it lazily, start an embedded Ray or join a cluster, and
check that the cluster offers the node resources a plan needs.

The core imports without Ray; only this module (and :mod:`qsplit.serve._replica`, which it
imports on demand) touches it.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from enum import Enum
from types import ModuleType

from qsplit.errors import DependencyError, InputError

NODE_UNITS = 1.0
"""How much of its node's resource an embedded Ray offers: one unit per node name."""

REPLICA_SHARE = 0.01
"""How much of its node's resource one replica asks for: placement, not capacity (100 replicas
fit on a node offering one unit; ORT's threads, not Ray, bound the CPU they use)."""


def import_ray() -> tuple[ModuleType, ModuleType]:
    """``ray`` and ``ray.serve``, or a :class:`DependencyError` naming the extra to install."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise DependencyError(
            "serving on Ray needs Ray Serve, which is not installed. "
            "Fix: pip install 'qsplit[ray]' (ray[serve] >= 2.40)"
        ) from None
    return ray, serve


class Connection(Enum):
    """How this process came to Ray, which says what closing a session must undo."""

    STARTED = "started"
    """qsplit started an embedded Ray: stop Serve and Ray."""
    JOINED = "joined"
    """qsplit joined a cluster: delete its applications and disconnect."""
    ATTACHED = "attached"
    """The process was connected already (by the application): delete its applications only."""


def start(address: str | None, resources: Collection[str]) -> Connection:
    """Connect this process to Ray and start Serve without an HTTP proxy (qsplit calls its
    deployments through handles).

    Without ``address``, an embedded Ray sized to this machine offers every name in
    ``resources`` as a custom resource, so one machine hosts every node. With one, the cluster
    must already offer them (:func:`check_resources`), as must a Ray the process is already
    connected to.
    """
    ray, serve = import_ray()
    if ray.is_initialized():
        connection = Connection.ATTACHED
    elif address is None:
        start_embedded(resources)
        connection = Connection.STARTED
    else:
        join(address)
        connection = Connection.JOINED
    try:
        check_resources(address, resources)
        serve.start(proxy_location="Disabled")
    except BaseException:
        stop(connection, ())
        raise
    return connection


def join(address: str) -> None:
    """Connect this process to the Ray cluster at ``address``; a cluster that wants Ray's auth
    token this process does not send is refused with the fix (Ray ≥ 2.5x enables token
    authentication on the clusters it starts)."""
    ray, _ = import_ray()
    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # Ray raises ConnectionError, its cause says why
        if "auth" not in f"{exc} {exc.__cause__}".lower():
            raise
        raise InputError(
            f"the Ray cluster at {address} wants an authentication token this process does "
            "not send",
            field="--ray-address",
            fix="export RAY_AUTH_MODE=token, with the cluster's token in ~/.ray/auth_token or "
            "RAY_AUTH_TOKEN (on the cluster's machine: `ray get-auth-token`)",
        ) from None


def stop(connection: Connection, applications: Collection[str]) -> None:
    """Undo what :func:`start` did, and delete ``applications`` from Serve."""
    ray, serve = import_ray()
    if connection is Connection.STARTED:
        serve.shutdown()
        ray.shutdown()
        return
    for name in applications:
        serve.delete(name)
    if connection is Connection.JOINED:
        ray.shutdown()


def start_embedded(resources: Collection[str], *, attempts: int = 3) -> None:
    """Start Ray in this process, sized to this machine, offering one unit of each of
    ``resources``.

    On a loaded host Ray's raylet gives up when its dashboard agent (Python, slow to import)
    has not written its port within 30 s, a wait no setting of Ray 2.60 lengthens; the next
    attempt finds the agent's modules in the page cache. So a start that timed out is retried.
    """
    ray, _ = import_ray()
    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                num_cpus=os.cpu_count() or 1,
                resources=dict.fromkeys(resources, NODE_UNITS),
                include_dashboard=False,
                log_to_driver=False,
            )
            return
        except Exception as exc:  # Ray raises a bare Exception for a node that did not start
            ray.shutdown()
            if attempt == attempts or "timed out during startup" not in str(exc):
                raise


def check_resources(address: str | None, needed: Collection[str]) -> None:
    """Refuse a cluster that lacks a resource of ``needed``, naming each and how to add it."""
    ray, _ = import_ray()
    offered = ray.cluster_resources()
    missing = sorted(r for r in needed if offered.get(r, 0) < REPLICA_SHARE)
    if missing:
        example = ", ".join(f'"{r}": 1' for r in missing)
        raise InputError(
            f"the Ray cluster offers no resource {', '.join(map(repr, missing))}, which the "
            "plan's nodes of that name need",
            field="--ray-address" if address is not None else "ray",
            fix=f"start a Ray node for it: ray start --address {address or 'HEAD'} "
            f"--resources '{{{example}}}'",
        )
