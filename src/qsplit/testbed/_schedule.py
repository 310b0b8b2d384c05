"""Timed scripts of testbed changes: ``qsplit testbed play schedule.yaml``.

A schedule file lists what happens to a running testbed, and when, counted from the moment it
starts playing::

    schema_version: 1
    events:
      - {at: 5s, link: [device, edge], rate: 2MB/s}         # rate and/or delay
      - {at: 15s, link: [device, edge], rate: 20MB/s, delay: 5ms}
      - {at: 8s, node: edge, speed: 3}                      # 3× slower than its profile
      - {at: 20s, node: edge, kill: true}
      - {at: 30s, node: edge, restart: true}

Units are read as in infrastructure files (:mod:`qsplit.infra`). Loading checks every event
against the schema and :meth:`Schedule.check` against the testbed it is to be played on, each
listing every problem with its field and fix, so a script fails before its first event rather
than half way through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from qsplit._yamlio import read_yaml
from qsplit.errors import InputError
from qsplit.infra import parse_bandwidth, parse_duration
from qsplit.runtime import MAX_SLOWDOWN
from qsplit.testbed._state import TestbedState
from qsplit.testbed._testbed import Testbed

SCHEDULE_SCHEMA_VERSION = 1

Action = Literal["set_link", "set_node_speed", "kill_node", "restart_node"]

_Rate = Annotated[float, BeforeValidator(parse_bandwidth), Field(gt=0)]
_Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


class _EventDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: _Duration
    link: tuple[str, str] | None = None
    node: str | None = None
    rate: _Rate | None = None
    delay: _Duration | None = None
    speed: float | None = Field(default=None, ge=1, le=MAX_SLOWDOWN, allow_inf_nan=False)
    kill: Literal[True] | None = None
    restart: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_change(self) -> _EventDoc:
        if (self.link is None) == (self.node is None):
            raise ValueError("an event changes either a `link: [from, to]` or a `node:`")
        if self.link is not None:
            if self.rate is None and self.delay is None:
                raise ValueError("a link event needs `rate:`, `delay:` or both")
            if self.speed is not None or self.kill or self.restart:
                raise ValueError("a link event takes only `rate:` and `delay:`")
        elif [self.speed is not None, bool(self.kill), bool(self.restart)].count(True) != 1:
            raise ValueError(
                "a node event takes exactly one of `speed:`, `kill: true`, `restart: true`"
            )
        elif self.rate is not None or self.delay is not None:
            raise ValueError("`rate:` and `delay:` belong to link events")
        return self


class _ScheduleDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    events: list[_EventDoc] = Field(min_length=1)


_FIXES = {
    "schema_version": f"write `schema_version: {SCHEDULE_SCHEMA_VERSION}`",
    "events": "list the changes under `events:`",
    "at": "give the time since the start, e.g. 5s or 1500ms",
    "link": "name the directed link as `[from, to]`",
    "node": "name one of the testbed's nodes",
    "rate": "give a positive rate, e.g. 2MB/s or 16Mbit/s",
    "delay": "give a one-way latency ≥ 0, e.g. 20ms",
    "speed": f"give how many times slower than its profile the node runs, 1 to {MAX_SLOWDOWN:g}",
    "kill": "write `kill: true`",
    "restart": "write `restart: true`",
}


@dataclass(frozen=True)
class ScheduleEvent:
    """One change of a running testbed, ``at_s`` seconds after the schedule starts."""

    at_s: float
    action: Action
    target: tuple[str, ...]
    """``(from, to)`` of a link; ``(node,)`` of a node."""
    bandwidth_bytes_per_s: float | None = None
    latency_s: float | None = None
    speed_factor: float | None = None
    """Times slower than the node's profile (``set_node_speed``)."""

    def apply(self, testbed: Testbed) -> None:
        if self.action == "set_link":
            source, target = self.target
            testbed.set_link(
                source,
                target,
                bandwidth_bytes_per_s=self.bandwidth_bytes_per_s,
                latency_s=self.latency_s,
            )
        elif self.action == "set_node_speed":
            assert self.speed_factor is not None  # the loader requires it
            testbed.set_node_speed(self.target[0], self.speed_factor)
        elif self.action == "kill_node":
            testbed.kill_node(self.target[0])
        else:
            testbed.restart_node(self.target[0])

    def describe(self) -> str:
        """A short label, e.g. ``device→edge 2 MB/s`` or ``kill edge`` (figures, logs)."""
        if self.action == "set_link":
            return f"{'→'.join(self.target)} {_shape(self.bandwidth_bytes_per_s, self.latency_s)}"
        if self.action == "set_node_speed":
            return f"{self.target[0]} {self.speed_factor:g}× slower"
        return f"{self.action.removesuffix('_node')} {self.target[0]}"


@dataclass(frozen=True)
class Schedule:
    events: tuple[ScheduleEvent, ...]
    """In the order they are played (by ``at_s``; the file's order among equal times)."""
    source: str | None = None

    @property
    def duration_s(self) -> float:
        return self.events[-1].at_s

    def moments(self) -> tuple[tuple[float, str], ...]:
        """``(at_s, label)`` per distinct time: what happens then, links given the same shape
        at once told together (``device→edge, device→cloud 1 MB/s``)."""
        by_time: dict[float, list[ScheduleEvent]] = {}
        for event in self.events:
            by_time.setdefault(event.at_s, []).append(event)
        return tuple((at, _together(events)) for at, events in by_time.items())

    def check(self, state: TestbedState) -> None:
        """:class:`InputError` listing every event that names a link or node the testbed
        described by ``state`` does not have."""
        links = {(lk.source, lk.target) for lk in state.links}
        problems = []
        for i, event in enumerate(self.events):
            if event.action == "set_link" and event.target not in links:
                listing = ", ".join(f"[{a}, {b}]" for a, b in sorted(links))
                problems.append(
                    f"events[{i}].link: the testbed has no link {event.target[0]}->"
                    f"{event.target[1]}. Fix: name one of {listing}"
                )
            elif event.action != "set_link" and event.target[0] not in state.agents:
                problems.append(
                    f"events[{i}].node: the testbed has no node {event.target[0]!r}. Fix: name "
                    f"one of {', '.join(state.agents)}"
                )
        if problems:
            listing = "".join(f"\n  - {p}" for p in problems)
            raise InputError(
                f"{len(problems)} event(s) do not fit the running testbed:{listing}",
                file=self.source,
            )


@dataclass(frozen=True)
class PlayedEvent:
    event: ScheduleEvent
    applied_at: float
    """Wall-clock time (``time.time``) when the change had been applied."""


def load_schedule(path: str | Path) -> Schedule:
    """Read and validate a schedule file; :class:`InputError` lists every problem."""
    return schedule_from_dict(read_yaml(path), source=str(path))


def schedule_from_dict(data: Any, *, source: str | None = None) -> Schedule:
    """Validate an already parsed schedule document; :class:`InputError` lists every problem."""
    if not isinstance(data, Mapping):
        raise InputError(
            f"expected a mapping with schema_version and events, got {type(data).__name__}",
            file=source,
            field="(top level)",
            fix="write `schema_version: 1` and put the list of changes under `events:`",
        )
    try:
        doc = _ScheduleDoc.model_validate(data)
    except ValidationError as exc:
        listing = "".join(f"\n  - {_problem(err)}" for err in exc.errors())
        raise InputError(
            f"{exc.error_count()} problem(s) in the schedule file:{listing}", file=source
        ) from None
    events = [_event(e) for e in doc.events]
    return Schedule(tuple(sorted(events, key=lambda e: e.at_s)), source)


def play(
    testbed: Testbed,
    schedule: Schedule,
    *,
    start: float | None = None,
    stop: threading.Event | None = None,
    on_event: Callable[[PlayedEvent], None] | None = None,
) -> tuple[PlayedEvent, ...]:
    """Apply each event of ``schedule`` to ``testbed`` at its time after ``start`` (a
    ``time.time()``, default now); returns what was applied, and when. ``stop`` ends the play
    early (the events not yet due are skipped). The schedule is checked against the testbed
    first, so a wrong name fails before anything changed."""
    schedule.check(testbed.refresh())
    start = time.time() if start is None else start
    stop = stop or threading.Event()
    played = []
    for event in schedule.events:
        if stop.wait(max(0.0, start + event.at_s - time.time())):
            break
        event.apply(testbed)
        played.append(PlayedEvent(event, time.time()))
        if on_event is not None:
            on_event(played[-1])
    return tuple(played)


def _shape(bandwidth_bytes_per_s: float | None, latency_s: float | None) -> str:
    parts = []
    if bandwidth_bytes_per_s is not None:
        parts.append(f"{bandwidth_bytes_per_s / 1e6:g} MB/s")
    if latency_s is not None:
        parts.append(f"{latency_s * 1e3:g} ms")
    return " ".join(parts)


def _together(events: list[ScheduleEvent]) -> str:
    shapes: dict[tuple[float | None, float | None], list[str]] = {}
    others = []
    for event in events:
        if event.action == "set_link":
            shape = (event.bandwidth_bytes_per_s, event.latency_s)
            shapes.setdefault(shape, []).append("→".join(event.target))
        else:
            others.append(event.describe())
    links_told = [f"{', '.join(links)} {_shape(*shape)}" for shape, links in shapes.items()]
    return "; ".join([*links_told, *others])


def _event(doc: _EventDoc) -> ScheduleEvent:
    if doc.link is not None:
        return ScheduleEvent(doc.at, "set_link", doc.link, doc.rate, doc.delay)
    assert doc.node is not None  # the model validator requires a link or a node
    if doc.speed is not None:
        return ScheduleEvent(doc.at, "set_node_speed", (doc.node,), speed_factor=doc.speed)
    return ScheduleEvent(doc.at, "kill_node" if doc.kill else "restart_node", (doc.node,))


def _problem(err: Any) -> str:
    loc = err["loc"]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown field. Fix: remove it or correct its spelling"
    if len(loc) == 2 and loc[0] == "events":  # the event as a whole
        fix = "write e.g. `{at: 5s, link: [device, edge], rate: 2MB/s}` or `{at: 9s, node: edge, "
        fix += "kill: true}`"
    else:
        named = [p for p in loc if isinstance(p, str) and p in _FIXES]
        fix = _FIXES[named[-1]] if named else "see docs/testbed.md, Schedules"
    return f"{path or '(top level)'}: {message[:1].lower() + message[1:]}. Fix: {fix}"
