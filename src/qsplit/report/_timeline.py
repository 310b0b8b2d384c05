"""Latency over time under a changing testbed: per-request timelines of several strategies, the
schedule's events, and the per-phase table (issue 15's adaptive scenario).

The values here are what a scenario run records (``qsplit demo --scenario adaptive`` writes
them into ``adaptive.json``); :func:`phase_rows` and :func:`plot_timelines` turn them into the
report's table and figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimelinePoint:
    """One request of a strategy's stream."""

    at_s: float
    """When it was sent, in seconds since the schedule started."""
    latency_s: float
    """Until it was answered, or until it failed."""
    plan: str
    """The plan that ran it (an id or a label)."""
    lost: bool = False
    """It never got an answer."""
    error: str | None = None
    """Why it was lost."""


@dataclass(frozen=True)
class Timeline:
    """One strategy's run of the scenario."""

    strategy: str
    points: tuple[TimelinePoint, ...]
    switches: tuple[tuple[float, str], ...] = ()
    """``(at_s, plan)``: when new requests started going to another plan."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "requests": [vars(p) for p in self.points],
            "switches": [{"at_s": at, "plan": plan} for at, plan in self.switches],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        return cls(
            data["strategy"],
            tuple(TimelinePoint(**p) for p in data["requests"]),
            tuple((float(s["at_s"]), str(s["plan"])) for s in data["switches"]),
        )


@dataclass(frozen=True)
class Phase:
    """A stretch of the scenario between two schedule events."""

    label: str
    """What began it (``nominal`` for the start)."""
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PhaseRow:
    strategy: str
    phase: str
    requests: int
    """Sent in the phase."""
    lost: int
    p50_s: float | None
    """Median latency of the answered requests (``None``: none answered)."""
    p95_s: float | None


def phases(events: Sequence[tuple[float, str]], end_s: float) -> tuple[Phase, ...]:
    """The phases that ``(at_s, label)`` events cut ``[0, end_s)`` into; events at one time
    share a phase whose label joins theirs."""
    starts: dict[float, list[str]] = {0.0: []}
    for at, label in sorted(events, key=lambda e: e[0]):
        starts.setdefault(at, []).append(label)
    times = sorted(starts)
    bounds = [*times[1:], max(end_s, times[-1])]
    return tuple(
        Phase("; ".join(starts[t]) or "nominal", t, end)
        for t, end in zip(times, bounds, strict=True)
    )


def phase_rows(timelines: Sequence[Timeline], cut: Sequence[Phase]) -> tuple[PhaseRow, ...]:
    """p50/p95 latency and requests lost per strategy and phase (a request belongs to the
    phase it was sent in; the last phase takes everything after its start)."""
    rows = []
    for timeline in timelines:
        for i, phase in enumerate(cut):
            last = i == len(cut) - 1
            sent = [
                p
                for p in timeline.points
                if phase.start_s <= p.at_s and (last or p.at_s < phase.end_s)
            ]
            answered = sorted(p.latency_s for p in sent if not p.lost)
            rows.append(
                PhaseRow(
                    timeline.strategy,
                    phase.label,
                    len(sent),
                    sum(p.lost for p in sent),
                    statistics.median(answered) if answered else None,
                    _percentile(answered, 0.95),
                )
            )
    return tuple(rows)


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile: few requests per phase, so no interpolation invents one."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]


def phase_table(rows: Sequence[PhaseRow]) -> str:
    """The rows as a Markdown table, one line per strategy and phase."""
    lines = [
        "| strategy | phase | requests | lost | p50 | p95 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.strategy} | {row.phase} | {row.requests} | {row.lost} | "
            f"{_ms(row.p50_s)} | {_ms(row.p95_s)} |"
        )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1e3:.0f} ms"
