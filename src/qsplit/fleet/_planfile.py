"""Reading a fleet plan file back: what a serving layer deploys.

``FleetPlan.save`` writes the whole prediction; a serving layer needs only who runs what:
per device class the block → node assignment, per shared node its replicas, its batch size and
the components it hosts. :func:`load_fleet_plan` reads exactly that, checked, as value objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qsplit._jsonio import read_json
from qsplit.errors import InputError, SchemaError
from qsplit.fleet._model import BATCH_WAIT_S
from qsplit.fleet._spec import DeviceRuntime

FLEET_PLAN_KIND = "fleet-plan"
FLEET_PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ClassDeployment:
    """What every device of one class runs."""

    name: str
    count: int
    rate_hz: float
    assignment: Mapping[str, str]
    """Block → node; the device is named like the class."""
    runtime: DeviceRuntime = "ray"
    """Ray actors, or light agents behind gateway agents (:class:`qsplit.fleet.DeviceClass`)."""


@dataclass(frozen=True)
class HostedComponent:
    """A component a shared node serves for one or more classes."""

    blocks: tuple[str, ...]
    classes: tuple[str, ...]
    rate_hz: float
    """Requests per second it is planned for."""


@dataclass(frozen=True)
class SharedDeployment:
    """What one shared node runs."""

    node: str
    replicas: int
    batch_size: int
    components: tuple[HostedComponent, ...]
    batch_wait_s: float = BATCH_WAIT_S
    """How long a batch stays open for more requests (plan files from before it was
    recorded: the value they were served with)."""


@dataclass(frozen=True)
class FleetDeployment:
    """A fleet plan as a serving layer reads it."""

    classes: tuple[ClassDeployment, ...]
    shared: tuple[SharedDeployment, ...]
    source: str | None = None

    def device_class(self, name: str, *, field: str = "device_class") -> ClassDeployment:
        """The class named ``name``; an :class:`InputError` naming ``field`` otherwise."""
        for c in self.classes:
            if c.name == name:
                return c
        raise InputError(
            f"no device class {name!r} in the fleet plan",
            file=self.source,
            field=field,
            fix=f"use one of {', '.join(c.name for c in self.classes)}",
        )


def load_fleet_plan(path: str | Path) -> FleetDeployment:
    """Read a fleet plan written by ``qsplit fleet plan``; :class:`SchemaError` names the
    field of a file that is not one."""
    document = read_json(path, FLEET_PLAN_KIND, (FLEET_PLAN_SCHEMA_VERSION,))
    try:
        classes = tuple(
            ClassDeployment(
                str(c["name"]),
                int(c["count"]),
                float(c["rate_hz"]),
                dict(c["assignment"]),
                _runtime(c.get("runtime", "ray")),
            )
            for c in document["classes"]
        )
        shared = tuple(
            SharedDeployment(
                str(s["node"]),
                int(s["replicas"]),
                int(s["batch_size"]),
                tuple(
                    HostedComponent(tuple(h["blocks"]), tuple(h["classes"]), float(h["rate_hz"]))
                    for h in s["components"]
                ),
                float(s.get("batch_wait_s", BATCH_WAIT_S)),
            )
            for s in document["shared"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(
            f"malformed fleet plan ({type(exc).__name__}: {exc})",
            file=path,
            field=_field(exc),
            fix="regenerate it with `qsplit fleet plan`",
        ) from None
    return FleetDeployment(classes, shared, str(path))


def _runtime(value: object) -> DeviceRuntime:
    if value == "ray" or value == "agent":
        return value
    raise ValueError(f"runtime: {value!r} is neither 'ray' nor 'agent'")


def _field(exc: Exception) -> str | None:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else None
