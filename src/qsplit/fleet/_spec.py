"""The fleet as the fleet planner sees it: device classes sharing some nodes of an infrastructure.

A fleet is many devices, grouped into classes of identical devices (same speed, power, links and
request rate), that send their requests to the same shared nodes (the infrastructure's edge and
cloud machines), each shared node running a number of replicas. Every class gets an ordinary
single-device :class:`~qsplit.infra.Infra` of its own (:meth:`Fleet.class_infra`), so each class
is planned by :func:`qsplit.plan.plan` exactly as one device would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from qsplit.errors import InputError
from qsplit.infra import Infra, Link, Node

DeviceRuntime = Literal["ray", "agent"]
"""What a device class's devices run: a Ray actor, or qsplit's light agent behind gateways."""


@dataclass(frozen=True)
class DeviceClass:
    """Identical devices: one node spec, one request rate, their own links to the shared nodes."""

    name: str
    count: int
    """Devices in the class."""
    rate_hz: float
    """Requests per second that *each* device sends (Poisson)."""
    node: Node
    """What one device is (role ``device``, named like the class)."""
    links: tuple[Link, ...]
    """Directed links between one device and the shared nodes (each device has its own)."""
    runtime: DeviceRuntime = "ray"
    """How the devices reach the shared nodes when served (docs/serve.md): ``ray``, they run
    as Ray actors calling Serve directly; ``agent``, they keep qsplit's light agent (a device
    that cannot run Ray) and reach each shared node through a gateway agent."""

    @property
    def total_rate_hz(self) -> float:
        """Requests per second of the whole class."""
        return self.count * self.rate_hz


@dataclass(frozen=True)
class SharedNode:
    """A node of the infrastructure that every class may offload to."""

    node: str
    replicas: int
    """Identical copies serving one queue (the servers of an M/G/c queue)."""


@dataclass(frozen=True)
class Fleet:
    """Device classes and the shared nodes they use, over one infrastructure."""

    infra: Infra
    """The infrastructure file's nodes and links (its own ``device`` is not used by the fleet)."""
    classes: tuple[DeviceClass, ...]
    shared: tuple[SharedNode, ...]
    source: str | None = field(default=None, compare=False)

    @property
    def device_count(self) -> int:
        return sum(c.count for c in self.classes)

    @property
    def shared_names(self) -> tuple[str, ...]:
        return tuple(s.node for s in self.shared)

    def device_class(self, name: str) -> DeviceClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise InputError(
            f"unknown device class {name!r}",
            file=self.source,
            field="fleet.classes",
            fix=f"use one of {', '.join(c.name for c in self.classes)}",
        )

    def replicas(self, node: str) -> int:
        return next(s.replicas for s in self.shared if s.node == node)

    def class_infra(self, name: str, nodes: tuple[str, ...] | None = None) -> Infra:
        """The single-device infrastructure of one class: its device, the shared nodes (or the
        subset ``nodes`` of them) and the links among them, with the file's pinned routes
        between shared nodes."""
        device_class = self.device_class(name)
        keep = set(self.shared_names if nodes is None else nodes)
        ends = keep | {name}
        shared_nodes = tuple(n for n in self.infra.nodes if n.name in keep)
        links = tuple(
            lk for lk in (*device_class.links, *self.infra.links) if {lk.source, lk.target} <= ends
        )
        routes = tuple(r for r in self.infra.routes if {r.source, r.target, *r.via} <= keep)
        return Infra(
            device=name,
            nodes=(device_class.node, *shared_nodes),
            links=links,
            routes=routes,
            source=self.infra.source,
        )

    def scaled(self, device_count: int) -> Fleet:
        """The same fleet with ``device_count`` devices, split among the classes in proportion
        to their counts (largest remainders, so the counts add up exactly)."""
        total = self.device_count
        exact = [c.count * device_count / total for c in self.classes]
        counts = [int(x) for x in exact]
        order = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
        for i in order[: device_count - sum(counts)]:
            counts[i] += 1
        classes = tuple(replace(c, count=n) for c, n in zip(self.classes, counts, strict=True))
        return Fleet(self.infra, classes, self.shared, self.source)
