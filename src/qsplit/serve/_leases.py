"""Who still uses a shared Serve application, across the processes that deployed it.

Devices running the same plan deploy the same applications (their names come from the
deployment's identity, or a component's digest on a gateway), which is what lets their requests
meet in one batcher. But then no process owns an application: a device that leaves must not
delete what another still calls. Each user takes a *lease* on the applications it deployed,
held in one small named Ray actor of the cluster (namespace ``qsplit``, detached: it outlives
the drivers that come and go); releasing returns the applications no one holds any more, which
only then are deleted. A user that dies without releasing leaves its applications running, to
be deleted by hand (``serve.delete``), rather than one that is alive losing them.

Imported only once Ray is known to be there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray

LEASES_ACTOR = "qsplit-application-leases"
NAMESPACE = "qsplit"


@ray.remote(num_cpus=0)
class _Leases:
    """Application → the holders of a lease on it."""

    def __init__(self) -> None:
        self._holders: dict[str, set[str]] = {}

    def acquire(self, holder: str, applications: Sequence[str]) -> None:
        for application in applications:
            self._holders.setdefault(application, set()).add(holder)

    def release(self, holder: str, applications: Sequence[str]) -> list[str]:
        """Drop ``holder``'s leases; the applications now held by no one (one that was never
        leased counts as the holder's alone)."""
        free = []
        for application in applications:
            holders = self._holders.get(application, set())
            holders.discard(holder)
            if not holders:
                self._holders.pop(application, None)
                free.append(application)
        return free

    def holders(self, application: str) -> list[str]:
        return sorted(self._holders.get(application, ()))


def leases() -> Any:
    """The cluster's lease actor (created by its first user)."""
    return _Leases.options(
        name=LEASES_ACTOR, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote()


def acquire(holder: str, applications: Sequence[str]) -> None:
    """Lease ``applications`` for ``holder`` (before deploying them: a user releasing its last
    lease meanwhile then leaves them running)."""
    ray.get(leases().acquire.remote(holder, list(applications)))


def release(holder: str, applications: Sequence[str]) -> list[str]:
    """Release ``holder``'s leases on ``applications``; those no one holds any more."""
    return list(ray.get(leases().release.remote(holder, list(applications))))
