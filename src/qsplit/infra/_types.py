"""The infrastructure as the planner and runtime see it: nodes and directed links, in SI units."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from qsplit.errors import InputError

Role = Literal["device", "edge", "cloud"]


@dataclass(frozen=True)
class Node:
    """A machine that can run blocks."""

    name: str
    role: Role
    compute_power_w: float
    """Power drawn while computing, in watts (``P^c``)."""
    transmit_power_w: float
    """Power drawn while sending, in watts (``P^x``); charged to the sender of a transfer."""
    memory_bytes: int
    """Memory available for weights and activations of the components placed here."""
    reference_time_s: float | None = None
    """The node's own time for the reference workload (YOLO11n 640×640 fp32 in ONNX Runtime
    CPU, :data:`qsplit.profile.REFERENCE_WORKLOAD`), in seconds: the absolute speed the testbed
    and ``qsplit profile --infra`` emulate it at. ``None``: a real machine, profiled where it
    runs, that is never emulated."""
    address: str | None = None
    """``host:port`` of the node's agent, when it runs one."""


@dataclass(frozen=True)
class Link:
    """A directed network link; a transfer over it takes ``latency_s + bytes / bandwidth``."""

    source: str
    target: str
    bandwidth_bytes_per_s: float
    """The sender's egress rate over this link."""
    latency_s: float
    """One-way latency, charged once per tensor transfer."""

    def transfer_s(self, size_bytes: float) -> float:
        """Time to move ``size_bytes`` over this link."""
        return self.latency_s + size_bytes / self.bandwidth_bytes_per_s


@dataclass(frozen=True)
class Infra:
    """Nodes, directed links and the requesting device (where inputs come from and results go)."""

    device: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    source: str | None = field(default=None, compare=False)
    """File it was loaded from, for messages."""
    _nodes: dict[str, Node] = field(init=False, repr=False, compare=False)
    _links: dict[tuple[str, str], Link] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_nodes", {n.name: n for n in self.nodes})
        object.__setattr__(self, "_links", {(lk.source, lk.target): lk for lk in self.links})

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def node(self, name: str) -> Node:
        """The node called ``name``; :class:`InputError` naming the known nodes otherwise."""
        try:
            return self._nodes[name]
        except KeyError:
            raise InputError(
                f"unknown node {name!r}",
                file=self.source,
                field="nodes",
                fix=f"use one of {', '.join(self.node_names)}",
            ) from None

    def has_link(self, source: str, target: str) -> bool:
        return (source, target) in self._links

    def link(self, source: str, target: str) -> Link:
        """The direct link ``source → target``; :class:`InputError` when there is none."""
        try:
            return self._links[(source, target)]
        except KeyError:
            self.node(source)
            self.node(target)
            raise InputError(
                f"no link from {source!r} to {target!r}",
                file=self.source,
                field="links",
                fix=f"add a link {{from: {source}, to: {target}, bandwidth: ..., latency: ...}}",
            ) from None

    def with_links(self, links: Iterable[Link]) -> Infra:
        """A copy where ``links`` replace the links in the same direction (or are added).

        Used to plan with measured links instead of the file's nominal numbers.
        """
        updated = dict(self._links)
        for link in links:
            self.node(link.source)
            self.node(link.target)
            if link.source == link.target:
                raise InputError(
                    f"a link from {link.source!r} to itself",
                    field="links",
                    fix="drop it: transfers within a node cost nothing",
                )
            updated[(link.source, link.target)] = link
        return replace(self, links=tuple(updated.values()))
