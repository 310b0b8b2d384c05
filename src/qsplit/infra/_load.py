"""Reading and validating an infrastructure YAML file.

Validation happens in two passes that both always run, so that one pass of fixes is enough:
the pydantic schema checks each field (types, units, signs), and :func:`_check_topology` checks
what relates fields to each other (unique names, known link ends, the device, reachability,
pinned routes made of links) on the raw document, tolerating entries the schema pass already
rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import networkx as nx
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from qsplit._yamlio import read_yaml
from qsplit.errors import InputError
from qsplit.infra._keys import check_curve_key
from qsplit.infra._types import Infra, Link, Node, PinnedRoute
from qsplit.infra._units import (
    BANDWIDTH_EXAMPLES,
    DURATION_EXAMPLES,
    MEMORY_EXAMPLES,
    parse_bandwidth,
    parse_duration,
    parse_memory,
)

INFRA_SCHEMA_VERSION = 1

BandwidthField = Annotated[float, BeforeValidator(parse_bandwidth), Field(gt=0)]
DurationField = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
MemoryField = Annotated[int, BeforeValidator(parse_memory), Field(gt=0)]
PositiveDurationField = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""Pydantic field types of the quantities with units (``5MB/s``, ``20ms``, ``4GiB``), for every
YAML schema that holds them (this file's, the fleet section's)."""


class _NodeDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    role: Literal["device", "edge", "cloud"]
    compute_power_w: float = Field(ge=0, allow_inf_nan=False)
    transmit_power_w: float = Field(ge=0, allow_inf_nan=False)
    memory_bytes: MemoryField
    reference_time: PositiveDurationField | None = None
    address: str | None = None
    curve_public_key: str | None = None

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @field_validator("curve_public_key", mode="before")
    @classmethod
    def _curve_key(cls, value: Any) -> str | None:
        return None if value is None else check_curve_key(value)


class LinkDocument(BaseModel):
    """One entry of a ``links:`` list as written: ``{from, to, bandwidth, latency, symmetric}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    bandwidth: BandwidthField
    latency: DurationField
    symmetric: bool = False

    def links(self) -> list[Link]:
        """The directed links it stands for: one, or both directions when ``symmetric``."""
        ends = [(self.source, self.target)]
        if self.symmetric:
            ends.append((self.target, self.source))
        return [Link(a, b, self.bandwidth, self.latency) for a, b in ends]


class _RouteDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    via: list[str]
    symmetric: bool = False


class _InfraDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    device: str
    nodes: list[_NodeDoc] = Field(min_length=1)
    links: list[LinkDocument] = Field(default_factory=list)
    routes: list[_RouteDoc] = Field(default_factory=list)
    fleet: Any = None
    """Device classes and shared nodes: read and validated by :mod:`qsplit.fleet`, which plans
    them; a single-device plan ignores the section."""


_FIXES = {
    "schema_version": f"write `schema_version: {INFRA_SCHEMA_VERSION}`",
    "device": "name the requesting node, e.g. `device: device`",
    "nodes": "list the machines under `nodes:`",
    "links": "list directed links under `links:`",
    "routes": "list pinned routes under `routes:`, e.g. `- {from: device, to: cloud, via: [edge]}`",
    "via": "list the intermediate nodes in order, e.g. `via: [edge]`",
    "name": "give every node a unique, non-empty name",
    "role": "use one of device, edge, cloud",
    "compute_power_w": "give the power drawn while computing, in watts (≥ 0)",
    "transmit_power_w": "give the power drawn while sending, in watts (≥ 0)",
    "memory_bytes": f"give the memory available, e.g. {MEMORY_EXAMPLES}",
    "reference_time": (
        "give the node's time for the reference workload (YOLO11n 640×640 fp32 in ONNX Runtime "
        "CPU; docs/planner.md), e.g. 425ms, or omit it"
    ),
    "address": "write host:port, e.g. 127.0.0.1:7101, or omit it",
    "curve_public_key": (
        "paste the quoted line `qsplit keys generate NODE` printed (the `.pub` file), "
        'e.g. curve_public_key: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", or omit it'
    ),
    "from": "name a node listed under `nodes:`",
    "to": "name a node listed under `nodes:`",
    "bandwidth": f"give a positive rate, e.g. {BANDWIDTH_EXAMPLES}",
    "latency": f"give a one-way latency ≥ 0, e.g. {DURATION_EXAMPLES}",
    "symmetric": "use true or false",
}


_RETIRED = {
    "speed_factor": (
        "speed_factor (times slower than the machine running the testbed) is no longer "
        "read: it made the emulated node as fast as whatever host ran it",
        "describe the node absolutely with `reference_time`, its time for the reference "
        "workload (docs/planner.md); to keep the node as it was emulated, write "
        "speed_factor × the YOLO11n time of the host it was tuned on (`qsplit testbed "
        "calibrate` measures this host's)",
    ),
}
"""Fields that earlier versions read, with what to write instead."""


@dataclass(frozen=True)
class InfraProblem:
    """One thing wrong with an infrastructure document."""

    field: str
    """Path of the offending field, e.g. ``links[2].bandwidth``."""
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}. Fix: {self.fix}"


def load_infra(path: str | Path) -> Infra:
    """Read and validate an infrastructure YAML file; :class:`InputError` lists every problem."""
    return infra_from_dict(read_yaml(path), source=str(path))


def infra_from_dict(data: Any, *, source: str | None = None) -> Infra:
    """Validate an already parsed document; :class:`InputError` lists every problem."""
    problems = validate_infra(data)
    if problems:
        listing = "".join(f"\n  - {p}" for p in problems)
        raise InputError(
            f"{len(problems)} problem(s) in the infrastructure file:{listing}", file=source
        )
    doc = _InfraDoc.model_validate(data)
    return Infra(
        device=doc.device,
        nodes=tuple(
            Node(
                name=n.name,
                role=n.role,
                compute_power_w=n.compute_power_w,
                transmit_power_w=n.transmit_power_w,
                memory_bytes=n.memory_bytes,
                reference_time_s=n.reference_time,
                address=n.address,
                curve_public_key=n.curve_public_key,
            )
            for n in doc.nodes
        ),
        links=tuple(_expand_links(doc.links)),
        routes=tuple(_expand_routes(doc.routes)),
        source=source,
    )


def validate_infra(data: Any) -> tuple[InfraProblem, ...]:
    """Every problem of an infrastructure document (empty when it is valid)."""
    if not isinstance(data, Mapping):
        return (
            InfraProblem(
                "(top level)",
                f"expected a mapping with schema_version, device, nodes and links, "
                f"got {type(data).__name__}",
                "start from src/qsplit/examples/three-tier.yaml",
            ),
        )
    problems: list[InfraProblem] = []
    try:
        _InfraDoc.model_validate(data)
    except ValidationError as exc:
        problems.extend(_schema_problem(err) for err in exc.errors())
    problems.extend(_check_topology(data))
    return tuple(sorted(set(problems), key=_document_order))


def _schema_problem(err: Any) -> InfraProblem:
    loc = err["loc"]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        retired = _RETIRED.get(str(loc[-1]))
        if retired is not None:
            return InfraProblem(path, *retired)
        return InfraProblem(path, "unknown field", "remove it or correct its spelling")
    named = [p for p in loc if isinstance(p, str)]
    fix = _FIXES.get(named[-1], "see docs/formats-infra.md") if named else "see the docs"
    return InfraProblem(path or "(top level)", message[:1].lower() + message[1:], fix)


def _check_topology(data: Mapping[str, Any]) -> list[InfraProblem]:
    problems: list[InfraProblem] = []
    nodes = data.get("nodes")
    nodes = nodes if isinstance(nodes, list) else []
    first_seen: dict[str, int] = {}
    roles: dict[str, Any] = {}
    for i, node in enumerate(nodes):
        name = node.get("name") if isinstance(node, Mapping) else None
        if not isinstance(name, str) or not name:
            continue
        if name in first_seen:
            problems.append(
                InfraProblem(
                    f"nodes[{i}].name",
                    f"duplicate node name {name!r} (also nodes[{first_seen[name]}])",
                    "give every node a unique name",
                )
            )
        else:
            first_seen[name] = i
            roles[name] = node.get("role")

    device = data.get("device")
    device_ok = isinstance(device, str) and device in first_seen
    if isinstance(device, str) and not device_ok and first_seen:
        problems.append(
            InfraProblem(
                "device",
                f"{device!r} is not among the nodes ({', '.join(first_seen)})",
                "name one of the nodes, or add a node with that name",
            )
        )
    elif device_ok and roles[device] != "device":
        problems.append(
            InfraProblem(
                f"nodes[{first_seen[device]}].role",
                f"the requesting node {device!r} has role {roles[device]!r}",
                "give it `role: device`, or point `device:` at the requesting node",
            )
        )

    graph = nx.DiGraph()
    graph.add_nodes_from(first_seen)
    seen_links: dict[tuple[str, str], int] = {}
    links = data.get("links")
    for i, link in enumerate(links if isinstance(links, list) else []):
        if not isinstance(link, Mapping):
            continue
        ends = []
        for key in ("from", "to"):
            end = link.get(key)
            if isinstance(end, str) and end not in first_seen:
                problems.append(
                    InfraProblem(f"links[{i}].{key}", f"unknown node {end!r}", _FIXES[key])
                )
            ends.append(end if isinstance(end, str) and end in first_seen else None)
        source, target = ends
        if source is None or target is None:
            continue
        if source == target:
            problems.append(
                InfraProblem(
                    f"links[{i}]",
                    f"link from {source!r} to itself",
                    "remove it: transfers within a node cost nothing",
                )
            )
            continue
        directions = [(source, target)]
        if link.get("symmetric") is True:
            directions.append((target, source))
        for pair in directions:
            if pair in seen_links:
                problems.append(
                    InfraProblem(
                        f"links[{i}]",
                        f"duplicate link {pair[0]} → {pair[1]} (also links[{seen_links[pair]}])",
                        "keep one link per direction (`symmetric: true` adds the reverse)",
                    )
                )
            else:
                seen_links[pair] = i
                graph.add_edge(*pair)

    if device_ok:
        to_nodes = nx.descendants(graph, device)
        from_nodes = nx.ancestors(graph, device)
        for name, i in first_seen.items():
            if name == device:
                continue
            missing = []
            if name not in to_nodes:
                missing.append(f"receive from {device!r}")
            if name not in from_nodes:
                missing.append(f"send back to {device!r}")
            if missing:
                problems.append(
                    InfraProblem(
                        f"nodes[{i}]",
                        f"node {name!r} cannot {' or '.join(missing)} through the links, "
                        "directly or via other nodes",
                        f"add links between {name!r} and the rest (`symmetric: true` adds both "
                        "directions), or remove the node",
                    )
                )
    problems.extend(_check_routes(data.get("routes"), set(first_seen), graph))
    return problems


def _check_routes(routes: Any, nodes: set[str], graph: nx.DiGraph) -> list[InfraProblem]:
    """Pinned routes name known nodes, visit none twice, and step along existing links only."""
    problems: list[InfraProblem] = []
    seen: dict[tuple[str, str], int] = {}
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(route, Mapping):
            continue
        ends, via = [route.get("from"), route.get("to")], route.get("via")
        if not isinstance(via, list) or not all(isinstance(n, str) for n in [*ends, *via]):
            continue  # the schema pass reports the wrong types
        unknown = [(key, n) for key, n in (("from", ends[0]), ("to", ends[1])) if n not in nodes]
        unknown += [(f"via[{j}]", n) for j, n in enumerate(via) if n not in nodes]
        for key, name in unknown:
            problems.append(
                InfraProblem(f"routes[{i}].{key}", f"unknown node {name!r}", _FIXES["from"])
            )
        if unknown:
            continue
        path = [ends[0], *via, ends[1]]
        if len(set(path)) < len(path):
            problems.append(
                InfraProblem(
                    f"routes[{i}]",
                    f"route {' → '.join(path)} visits a node twice",
                    "list each intermediate node once, and neither end among them",
                )
            )
            continue
        directions = {(ends[0], ends[1]): ("via", path)}
        if route.get("symmetric") is True:
            directions[ends[1], ends[0]] = ("symmetric", path[::-1])
        for pair, (key, steps) in directions.items():
            missing = [f"{a} → {b}" for a, b in pairwise(steps) if not graph.has_edge(a, b)]
            if missing:
                problems.append(
                    InfraProblem(
                        f"routes[{i}].{key}",
                        f"no link {', '.join(missing)} on the route {' → '.join(steps)}",
                        "add the missing link(s) under `links:`, or route through linked nodes"
                        + (" (or drop `symmetric: true`)" if key == "symmetric" else ""),
                    )
                )
            elif pair in seen:
                problems.append(
                    InfraProblem(
                        f"routes[{i}]",
                        f"duplicate route {pair[0]} → {pair[1]} (also routes[{seen[pair]}])",
                        "keep one route per direction (`symmetric: true` adds the reverse)",
                    )
                )
            else:
                seen[pair] = i
    return problems


def _expand_links(docs: list[LinkDocument]) -> list[Link]:
    return [link for doc in docs for link in doc.links()]


def _expand_routes(docs: list[_RouteDoc]) -> list[PinnedRoute]:
    routes = []
    for doc in docs:
        routes.append(PinnedRoute(doc.source, doc.target, tuple(doc.via)))
        if doc.symmetric:
            routes.append(PinnedRoute(doc.target, doc.source, tuple(reversed(doc.via))))
    return routes


def _document_order(problem: InfraProblem) -> tuple[Any, ...]:
    """Sort key following the file: top-level fields, then nodes, then links, by index."""
    order = {"schema_version": 0, "device": 1, "nodes": 2, "links": 3, "routes": 4}
    head = problem.field.split("[")[0].split(".")[0]
    index = problem.field.split("[")[1].split("]")[0] if "[" in problem.field else "-1"
    return (order.get(head, 5), int(index) if index.isdigit() else -1, problem.field)
