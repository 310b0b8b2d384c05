"""Reading and validating the ``fleet:`` section of an infrastructure YAML file.

As for the rest of the file (:mod:`qsplit.infra`), two passes always both run, so one round of
fixes is enough: the pydantic schema checks each field, and :func:`_check_fleet` what relates
fields to each other (names unique and distinct from the nodes, shared nodes known and not the
device, every link joining its class to a shared node, every class able to reach and hear from
every shared node). Every problem is listed, each with its field path and fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qsplit._yamlio import read_yaml
from qsplit.errors import InputError
from qsplit.fleet._spec import DeviceClass, Fleet, SharedNode
from qsplit.infra import (
    Infra,
    InfraProblem,
    LinkDocument,
    MemoryField,
    Node,
    PositiveDurationField,
    infra_from_dict,
    validate_infra,
)


class _ClassDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    count: int = Field(ge=1)
    rate_hz: float = Field(gt=0, allow_inf_nan=False)
    compute_power_w: float = Field(ge=0, allow_inf_nan=False)
    transmit_power_w: float = Field(ge=0, allow_inf_nan=False)
    memory_bytes: MemoryField
    reference_time: PositiveDurationField | None = None
    links: list[LinkDocument] = Field(min_length=1)
    runtime: Literal["ray", "agent"] = "ray"


class _SharedDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(min_length=1)
    replicas: int = Field(default=1, ge=1)


class _FleetDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shared: list[_SharedDoc] = Field(min_length=1)
    classes: list[_ClassDoc] = Field(min_length=1)


_FIXES = {
    "fleet": "add `shared:` (the nodes devices offload to) and `classes:` (the devices)",
    "shared": "list the shared nodes, e.g. `shared: [{node: edge, replicas: 2}]`",
    "classes": "list device classes under `classes:` (see src/qsplit/examples/fleet.yaml)",
    "node": "name an edge or cloud node listed under `nodes:`",
    "replicas": "give the number of identical replicas serving the node's queue (≥ 1)",
    "name": "give every class a unique, non-empty name that no node has",
    "count": "give the number of devices in the class (≥ 1)",
    "rate_hz": "give each device's requests per second (> 0), e.g. 0.5",
    "compute_power_w": "give the power one device draws while computing, in watts (≥ 0)",
    "transmit_power_w": "give the power one device draws while sending, in watts (≥ 0)",
    "memory_bytes": "give one device's memory, e.g. 2GiB",
    "reference_time": "give one device's time for the reference workload, e.g. 1000ms",
    "links": "list the class's links, e.g. `- {from: phones, to: edge, bandwidth: 10MB/s, "
    "latency: 5ms, symmetric: true}`",
    "from": "name the class or a shared node",
    "to": "name the class or a shared node",
    "bandwidth": "give a positive rate, e.g. 10MB/s",
    "latency": "give a one-way latency ≥ 0, e.g. 5ms",
    "symmetric": "use true or false",
    "runtime": "use `ray` (devices run Ray) or `agent` (devices keep the light agent and reach "
    "the shared nodes through gateways)",
}


def load_fleet(path: str | Path) -> Fleet:
    """Read an infrastructure file with a ``fleet:`` section; :class:`InputError` lists every
    problem of the whole file."""
    return fleet_from_dict(read_yaml(path), source=str(path))


def fleet_from_dict(data: Any, *, source: str | None = None) -> Fleet:
    """Validate a parsed infrastructure document with a ``fleet:`` section."""
    problems = validate_fleet(data)
    if problems:
        listing = "".join(f"\n  - {p}" for p in problems)
        raise InputError(
            f"{len(problems)} problem(s) in the fleet description:{listing}", file=source
        )
    return _fleet(infra_from_dict(data, source=source), data)


def validate_fleet(data: Any) -> tuple[InfraProblem, ...]:
    """Every problem of the file, the infrastructure's own and the fleet section's."""
    problems = list(validate_infra(data))
    if not isinstance(data, Mapping):
        return tuple(problems)
    section = data.get("fleet")
    if section is None:
        problems.append(
            InfraProblem(
                "fleet",
                "the file has no fleet section",
                "add `fleet:` with `shared:` and `classes:` (see src/qsplit/examples/fleet.yaml)",
            )
        )
        return tuple(problems)
    try:
        _FleetDoc.model_validate(section)
    except ValidationError as exc:
        problems.extend(_schema_problem(err) for err in exc.errors())
    if isinstance(section, Mapping):
        problems.extend(_check_names(data, section))
    if not problems:
        problems.extend(_check_links(_fleet(infra_from_dict(data), data)))
    return tuple(problems)


def _fleet(infra: Infra, data: Any) -> Fleet:
    doc = _FleetDoc.model_validate(data["fleet"])
    classes = []
    for c in doc.classes:
        links = [link for doc in c.links for link in doc.links()]
        node = Node(
            name=c.name,
            role="device",
            compute_power_w=c.compute_power_w,
            transmit_power_w=c.transmit_power_w,
            memory_bytes=c.memory_bytes,
            reference_time_s=c.reference_time,
        )
        classes.append(
            DeviceClass(c.name, c.count, c.rate_hz, node, tuple(links), runtime=c.runtime)
        )
    shared = tuple(SharedNode(s.node, s.replicas) for s in doc.shared)
    return Fleet(infra, tuple(classes), shared, infra.source)


def _schema_problem(err: Any) -> InfraProblem:
    loc = ("fleet", *err["loc"])
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if err["type"] == "extra_forbidden":
        return InfraProblem(path, "unknown field", "remove it or correct its spelling")
    message = err["msg"].removeprefix("Value error, ")
    named = [p for p in loc if isinstance(p, str)]
    fix = _FIXES.get(named[-1], "see docs/formats.md (Fleet)")
    return InfraProblem(path, message[:1].lower() + message[1:], fix)


def _check_names(data: Mapping[str, Any], section: Mapping[str, Any]) -> list[InfraProblem]:
    """The name checks that need no valid schema: classes unique and not named like nodes,
    shared nodes known and not devices."""
    nodes = data.get("nodes") if isinstance(data.get("nodes"), list) else []
    roles = {n.get("name"): n.get("role") for n in nodes if isinstance(n, Mapping)}
    problems = []
    seen: dict[str, int] = {}
    classes = section.get("classes")
    for i, c in enumerate(classes if isinstance(classes, list) else []):
        name = c.get("name") if isinstance(c, Mapping) else None
        if not isinstance(name, str) or not name:
            continue
        if name in roles:
            problems.append(
                InfraProblem(
                    f"fleet.classes[{i}].name",
                    f"{name!r} is also a node's name",
                    "give the class a name no node has",
                )
            )
        elif name in seen:
            problems.append(
                InfraProblem(
                    f"fleet.classes[{i}].name",
                    f"duplicate class name {name!r} (also fleet.classes[{seen[name]}])",
                    "give every class a unique name",
                )
            )
        seen.setdefault(name, i)
    shared_seen: dict[str, int] = {}
    shared = section.get("shared")
    for i, s in enumerate(shared if isinstance(shared, list) else []):
        node = s.get("node") if isinstance(s, Mapping) else None
        if not isinstance(node, str):
            continue
        if node not in roles:
            problems.append(
                InfraProblem(f"fleet.shared[{i}].node", f"unknown node {node!r}", _FIXES["node"])
            )
        elif roles[node] == "device":
            problems.append(
                InfraProblem(
                    f"fleet.shared[{i}].node",
                    f"{node!r} is a device; the fleet's devices are its classes",
                    _FIXES["node"],
                )
            )
        elif node in shared_seen:
            problems.append(
                InfraProblem(
                    f"fleet.shared[{i}].node",
                    f"{node!r} is listed twice (also fleet.shared[{shared_seen[node]}])",
                    "list each shared node once",
                )
            )
        shared_seen.setdefault(node, i)
    return problems


def _check_links(fleet: Fleet) -> list[InfraProblem]:
    """Each class's links join it to shared nodes, and give it a route to and from each."""
    problems: list[InfraProblem] = []
    shared = set(fleet.shared_names)
    for i, c in enumerate(fleet.classes):
        for lk in c.links:
            ends = {lk.source, lk.target}
            if c.name not in ends or not ends - {c.name} <= shared:
                problems.append(
                    InfraProblem(
                        f"fleet.classes[{i}].links",
                        f"link {lk.source} → {lk.target} does not join {c.name!r} to a shared node",
                        f"make one end {c.name!r} and the other one of {', '.join(sorted(shared))}",
                    )
                )
        if problems:
            continue
        problems.extend(_check_routes(fleet, i))
    return problems


def _check_routes(fleet: Fleet, index: int) -> list[InfraProblem]:
    c = fleet.classes[index]
    infra = fleet.class_infra(c.name)
    problems = []
    for node in fleet.shared_names:
        missing = []
        for source, target, what in ((c.name, node, "reach"), (node, c.name, "hear from")):
            try:
                infra.route(source, target)
            except InputError:
                missing.append(what)
        if missing:
            problems.append(
                InfraProblem(
                    f"fleet.classes[{index}].links",
                    f"class {c.name!r} cannot {' or '.join(missing)} shared node {node!r}",
                    f"add links between {c.name!r} and {node!r} (`symmetric: true` adds both "
                    "directions) or to a node linked to it",
                )
            )
    return problems
