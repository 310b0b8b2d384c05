"""The infrastructure as the planner and runtime see it: nodes, directed links and the routes
transfers take between nodes without a direct link, in SI units."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Literal

from qsplit.errors import InputError
from qsplit.infra._routes import shortest_paths

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
    curve_public_key: str | None = None
    """The node's ZeroMQ CURVE public key (Z85): its agent's server key, and the key it is
    admitted with when it connects to other agents (the device's is the requester's). ``None``:
    the node talks in clear (allowed on loopback only, docs/runtime.md, Security)."""


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
class Route:
    """The links a transfer from one node to another crosses, in order.

    Store-and-forward: every intermediate node receives the whole tensor before sending it on,
    so the transfer takes the sum of its hops' times, and each hop is charged to its own link,
    its time at its *sender's* transmit power. A direct link is a route of one hop.
    """

    hops: tuple[Link, ...]

    @property
    def via(self) -> tuple[str, ...]:
        """The intermediate nodes (empty for a direct link)."""
        return tuple(link.target for link in self.hops[:-1])

    def hop_s(self, size_bytes: float) -> tuple[tuple[Link, float], ...]:
        """Each hop's link and the time ``size_bytes`` take on it."""
        return tuple((link, link.transfer_s(size_bytes)) for link in self.hops)

    def transfer_s(self, size_bytes: float) -> float:
        """Time to move ``size_bytes`` from the source to the target: the hops one after another."""
        return sum(seconds for _, seconds in self.hop_s(size_bytes))


@dataclass(frozen=True)
class PinnedRoute:
    """A route the infrastructure file fixes (``routes: [{from, to, via}]``) instead of the
    shortest one."""

    source: str
    target: str
    via: tuple[str, ...]
    """Intermediate nodes in order; every consecutive pair must be a link."""


@dataclass(frozen=True)
class Infra:
    """Nodes, directed links and the requesting device (where inputs come from and results go)."""

    device: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    routes: tuple[PinnedRoute, ...] = ()
    """Routes fixed by the file. Other pairs use their direct link, or, without one, the
    shortest path (:mod:`qsplit.infra._routes`)."""
    source: str | None = field(default=None, compare=False)
    """File it was loaded from, for messages."""
    _nodes: dict[str, Node] = field(init=False, repr=False, compare=False)
    _links: dict[tuple[str, str], Link] = field(init=False, repr=False, compare=False)
    _routes: dict[tuple[str, str], Route] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_nodes", {n.name: n for n in self.nodes})
        object.__setattr__(self, "_links", {(lk.source, lk.target): lk for lk in self.links})
        paths = shortest_paths(self.node_names, self.links)
        paths.update({pair: pair for pair in self._links})
        for pinned in self.routes:
            paths[pinned.source, pinned.target] = (pinned.source, *pinned.via, pinned.target)
        routes = {
            pair: Route(tuple(self.link(a, b) for a, b in pairwise(path)))
            for pair, path in paths.items()
        }
        object.__setattr__(self, "_routes", routes)

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

    def has_route(self, source: str, target: str) -> bool:
        return (source, target) in self._routes

    def route(self, source: str, target: str) -> Route:
        """How a transfer ``source → target`` travels (``source ≠ target``): the file's pinned
        route, else the direct link, else the shortest path; :class:`InputError` when none
        exists."""
        try:
            return self._routes[(source, target)]
        except KeyError:
            self.node(source)
            self.node(target)
            raise InputError(
                f"no route from {source!r} to {target!r}: no chain of links leads there",
                file=self.source,
                field="links",
                fix=f"add links that lead from {source!r} to {target!r} "
                "(`symmetric: true` adds the reverse of a link)",
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
