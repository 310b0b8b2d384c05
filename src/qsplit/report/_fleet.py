"""A fleet configuration's prediction beside what the emulated fleet measured.

The fleet planner claims two things that a run can check: how busy each shared node is (ρ) and
how long requests take (p50 and p95, per class and over the fleet, with queueing). The issue's
goal for the queueing model is p50 and p95 within 15 % of measurement
(:data:`FLEET_TOLERANCE`). A configuration whose prediction is saturated (a node at ρ ≥ 1) has
no steady state and no finite prediction: its errors are ``None`` and it is reported, not
judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qsplit.fleet import Outcome
from qsplit.serve import FleetMeasurement

FLEET_TOLERANCE = 0.15
"""Largest relative error of predicted p50 and p95 the issue accepts."""


def relative_error(predicted: float, measured: float) -> float | None:
    """``predicted / measured − 1``; ``None`` where either is not a finite positive number."""
    if not (math.isfinite(predicted) and math.isfinite(measured)) or measured <= 0:
        return None
    return predicted / measured - 1


@dataclass(frozen=True)
class Quantity:
    """One predicted number beside its measurement."""

    predicted: float
    """``inf`` where the prediction is saturated."""
    measured: float
    """``nan`` where nothing was measured."""

    @property
    def error(self) -> float | None:
        return relative_error(self.predicted, self.measured)

    def within(self, tolerance: float = FLEET_TOLERANCE) -> bool | None:
        """Whether the prediction is within ``tolerance``; ``None``: nothing to judge."""
        error = self.error
        return None if error is None else abs(error) <= tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"predicted": self.predicted, "measured": self.measured, "error": self.error}


@dataclass(frozen=True)
class ClassResult:
    """One device class in one configuration."""

    name: str
    sent: int
    completed: int
    p50_s: Quantity
    p95_s: Quantity


@dataclass(frozen=True)
class NodeResult:
    """One shared node in one configuration."""

    node: str
    replicas: int
    utilisation: Quantity
    """ρ: busy replica-seconds over the replica-seconds of the window."""
    wait_s: Quantity
    """Mean time a request queued for a replica of the node (Allen–Cunneen predicted; measured
    by the replicas over the requests that visited the node): separates the queueing model's
    error from the rest of the path's."""
    forming_s: Quantity
    """Mean time a request waited for its batch to close (the time-out model predicted)."""
    batch_size: Quantity
    """Mean size of the batches (the time-out model's predicted, the batches that ran)."""
    batches: Mapping[int, int]
    """Batch size → batches of that size that ran."""
    overruns: int
    """Runs slower than their emulated target (the host could not keep up)."""
    runs: int


@dataclass(frozen=True)
class FleetResult:
    """A configuration (the fleet plan or a baseline) predicted and measured."""

    label: str
    duration_s: float
    offered_hz: float
    """Requests per second the emulated devices send (the planned load)."""
    throughput_hz: float
    """Requests completed within the measured window, whenever sent, per second of it
    (:meth:`qsplit.serve.FleetMeasurement.throughput_hz`): below the offered rate when a node
    is saturated."""
    drained_hz: float
    """Requests sent in the window that completed at all (the run waits for them), per second
    of the window: the offered rate for any configuration that does not fail requests, even a
    saturated one, so not a throughput."""
    sent: int
    failed: int
    p50_s: Quantity
    p95_s: Quantity
    classes: tuple[ClassResult, ...]
    nodes: tuple[NodeResult, ...]
    device_overruns: Mapping[str, int]
    """Device class → device runs slower than their emulated target."""

    @property
    def saturated(self) -> bool:
        return math.isinf(self.p95_s.predicted)

    def quantities(self) -> dict[str, Quantity]:
        """Every latency checked: the fleet's and each class's p50 and p95, by name."""
        named = {"fleet p50": self.p50_s, "fleet p95": self.p95_s}
        for c in self.classes:
            named[f"{c.name} p50"] = c.p50_s
            named[f"{c.name} p95"] = c.p95_s
        return named

    def worst_error(self) -> float | None:
        """Largest absolute relative error over :meth:`quantities`, signed."""
        errors = [q.error for q in self.quantities().values() if q.error is not None]
        return max(errors, key=abs) if errors else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "duration_s": self.duration_s,
            "offered_hz": self.offered_hz,
            "throughput_hz": self.throughput_hz,
            "drained_hz": self.drained_hz,
            "sent": self.sent,
            "failed": self.failed,
            "saturated": self.saturated,
            "p50_s": self.p50_s.to_dict(),
            "p95_s": self.p95_s.to_dict(),
            "worst_error": self.worst_error(),
            "classes": [
                {
                    "name": c.name,
                    "sent": c.sent,
                    "completed": c.completed,
                    "p50_s": c.p50_s.to_dict(),
                    "p95_s": c.p95_s.to_dict(),
                }
                for c in self.classes
            ],
            "nodes": [
                {
                    "node": n.node,
                    "replicas": n.replicas,
                    "utilisation": n.utilisation.to_dict(),
                    "wait_s": n.wait_s.to_dict(),
                    "forming_s": n.forming_s.to_dict(),
                    "batch_size": n.batch_size.to_dict(),
                    "batches": {str(b): k for b, k in sorted(n.batches.items())},
                    "overruns": n.overruns,
                    "runs": n.runs,
                }
                for n in self.nodes
            ],
            "device_overruns": dict(self.device_overruns),
        }


def _mean_batch(batches: Mapping[int, int]) -> float:
    count = sum(batches.values())
    return sum(b * n for b, n in batches.items()) / count if count else math.nan


def compare_fleet(predicted: Outcome, measured: FleetMeasurement) -> FleetResult:
    """The prediction of a configuration (:func:`qsplit.fleet.assess` under the emulated
    fleet's load) beside its measurement."""
    classes = tuple(
        ClassResult(
            name=c.name,
            sent=sum(r.device_class == c.name for r in measured.requests),
            completed=len(measured.completed(c.name)),
            p50_s=Quantity(c.latency_p50_s, measured.quantile(0.5, c.name)),
            p95_s=Quantity(c.latency_p95_s, measured.quantile(0.95, c.name)),
        )
        for c in predicted.classes
    )
    nodes = tuple(
        NodeResult(
            node=n.node,
            replicas=n.replicas,
            utilisation=Quantity(
                n.utilisation,
                measured.utilisation(n.node) if n.node in measured.replicas else 0.0,
            ),
            wait_s=Quantity(n.wait_s, measured.mean_wait_s(n.node)),
            forming_s=Quantity(n.forming_s, measured.mean_forming_s(n.node)),
            batch_size=Quantity(n.mean_batch, _mean_batch(measured.batch_sizes.get(n.node, {}))),
            batches=dict(measured.batch_sizes.get(n.node, {})),
            overruns=measured.overruns.get(n.node, 0),
            runs=measured.runs.get(n.node, 0),
        )
        for n in predicted.nodes
    )
    shared = {n.node for n in predicted.nodes}
    return FleetResult(
        label=measured.label,
        duration_s=measured.duration_s,
        offered_hz=predicted.throughput_hz,
        throughput_hz=measured.throughput_hz(),
        drained_hz=len(measured.completed()) / measured.duration_s,
        sent=len(measured.requests),
        failed=len(measured.failed()),
        p50_s=Quantity(predicted.latency_p50_s, measured.quantile(0.5)),
        p95_s=Quantity(predicted.latency_p95_s, measured.quantile(0.95)),
        classes=classes,
        nodes=nodes,
        device_overruns={k: v for k, v in measured.overruns.items() if k not in shared},
    )


@dataclass(frozen=True)
class Versus:
    """The fleet plan against one other configuration, as measured."""

    against: str
    throughput_ratio: float
    """The fleet plan's throughput over the other's."""
    p95_ratio: float
    """The fleet plan's measured p95 over the other's (≤ 1: equal or better)."""

    def meets_goal(self, throughput: float = 1.5) -> bool:
        """The issue's goal against contention-blind plans: ≥ 1.5× throughput at equal or
        better p95."""
        return self.throughput_ratio >= throughput and self.p95_ratio <= 1.0


def versus(fleet: FleetResult, other: FleetResult) -> Versus:
    return Versus(
        other.label,
        fleet.throughput_hz / other.throughput_hz if other.throughput_hz > 0 else math.inf,
        fleet.p95_s.measured / other.p95_s.measured if other.p95_s.measured > 0 else math.nan,
    )


def validation_rows(results: Sequence[FleetResult]) -> list[tuple[str, str, Quantity]]:
    """``(configuration, quantity, value)`` for every latency checked in every configuration
    that has a finite prediction: the table the validation prints."""
    return [
        (r.label, name, q) for r in results if not r.saturated for name, q in r.quantities().items()
    ]
