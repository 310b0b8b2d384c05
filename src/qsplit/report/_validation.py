"""How well the cost model predicted what the agents measured, and what the plans gained.

The cost model is only worth planning with if its predictions match reality, so the first number
of a report is the mean absolute percentage error (MAPE) of predicted against measured
end-to-end latency, over every entry that was measured; the target is ≤ 10 %. Energy is
reported the same way, but it is measured as the cost model's power prices applied to measured
times, so its error says how well compute and transfer *times* were predicted, not how well the
prices match a power meter.

The gains compare measured latencies only (predicted gains are what the planner claimed, the
measured ones are what it delivered): per scenario, the fastest measured entry against the fp32
device-only one, and the fastest entry that quantizes blocks but stays on the device
("quantization alone") against the same reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qsplit.report._rundir import Entry, RunIndex

TARGET_MAPE_PCT = 10.0
"""Largest acceptable mean absolute percentage error of predicted latency."""

VALIDATION_KIND = "validation"
VALIDATION_SCHEMA_VERSION = 1


def percent_error(predicted: float, measured: float) -> float | None:
    """Signed error of a prediction in % of the measurement; ``None`` when nothing was measured."""
    if measured <= 0:
        return None
    return 100.0 * (predicted - measured) / measured


@dataclass(frozen=True)
class ErrorStats:
    """Prediction error of one quantity over a set of measured entries."""

    count: int
    """Entries with a positive measurement of the quantity."""
    mape_pct: float | None
    """Mean absolute percentage error; ``None`` when ``count`` is 0."""
    worst_entry: str | None
    """Id of the entry with the largest absolute error."""
    worst_error_pct: float | None
    """Its signed error in %."""

    @property
    def meets_target(self) -> bool | None:
        """Whether the MAPE is within :data:`TARGET_MAPE_PCT` (``None``: nothing measured)."""
        return None if self.mape_pct is None else self.mape_pct <= TARGET_MAPE_PCT

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "meets_target": self.meets_target}


@dataclass(frozen=True)
class Gain:
    """Measured latency of one entry against the fp32 device-only reference of its scenario."""

    entry: str
    latency_s: float
    reference_entry: str
    reference_latency_s: float

    @property
    def speedup(self) -> float:
        """How many times faster than the reference (> 1 is faster)."""
        return self.reference_latency_s / self.latency_s

    @property
    def reduction_pct(self) -> float:
        """Latency saved in % of the reference (negative when slower)."""
        return 100.0 * (1.0 - self.latency_s / self.reference_latency_s)

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "speedup": self.speedup, "reduction_pct": self.reduction_pct}


@dataclass(frozen=True)
class ScenarioValidation:
    """Prediction errors and measured gains within one scenario."""

    name: str
    device: str
    latency: ErrorStats
    energy: ErrorStats
    best: Gain | None
    """Fastest measured entry vs device-only; ``None`` without a measured device-only entry."""
    quantization_only: Gain | None
    """Fastest measured all-on-device entry with quantized blocks vs device-only."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": self.device,
            "latency": self.latency.to_dict(),
            "energy": self.energy.to_dict(),
            "best": None if self.best is None else self.best.to_dict(),
            "quantization_only": (
                None if self.quantization_only is None else self.quantization_only.to_dict()
            ),
        }


@dataclass(frozen=True)
class Validation:
    """Everything :func:`validate` found: overall and per scenario."""

    latency: ErrorStats
    energy: ErrorStats
    scenarios: tuple[ScenarioValidation, ...]
    noise: ErrorStats = ErrorStats(0, None, None, None)
    """Predicted against measured quantization noise, over quantized entries (no target: the
    latency target does not apply to it)."""
    target_mape_pct: float = TARGET_MAPE_PCT

    def scenario(self, name: str) -> ScenarioValidation:
        return next(s for s in self.scenarios if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_mape_pct": self.target_mape_pct,
            "latency": self.latency.to_dict(),
            "energy": self.energy.to_dict(),
            "noise": {k: v for k, v in self.noise.to_dict().items() if k != "meets_target"},
            "scenarios": [s.to_dict() for s in self.scenarios],
        }


def validate(index: RunIndex, devices: Mapping[str, str] | None = None) -> Validation:
    """Prediction errors and measured gains of a run.

    ``devices`` maps a scenario to its requesting node (the infra file's ``device``); a scenario
    missing from it falls back to its first node, which is where ``qsplit demo`` lists it.
    """
    devices = devices or {}
    scenarios = tuple(
        _scenario(
            s.name,
            devices.get(s.name, s.nodes[0]),
            [e for e in index.entries if e.scenario == s.name],
        )
        for s in index.scenarios
    )
    return Validation(
        latency=error_stats(index.entries, latency_pair),
        energy=error_stats(index.entries, energy_pair),
        scenarios=scenarios,
        noise=error_stats(index.entries, noise_pair),
    )


def error_stats(
    entries: Iterable[Entry], quantity: Callable[[Entry], tuple[float, float] | None]
) -> ErrorStats:
    """MAPE and worst entry of ``quantity`` (entry → (predicted, measured)) over ``entries``."""
    errors: dict[str, float] = {}
    for entry in entries:
        pair = quantity(entry)
        error = None if pair is None else percent_error(*pair)
        if error is not None:
            errors[entry.id] = error
    if not errors:
        return ErrorStats(0, None, None, None)
    worst = max(errors, key=lambda entry_id: abs(errors[entry_id]))
    mape = sum(abs(e) for e in errors.values()) / len(errors)
    return ErrorStats(len(errors), mape, worst, errors[worst])


def latency_pair(entry: Entry) -> tuple[float, float] | None:
    """Predicted and measured latency (s), ``None`` when the entry was not measured."""
    if entry.measured is None:
        return None
    return entry.predicted.latency_s, entry.measured.latency_s


def energy_pair(entry: Entry) -> tuple[float, float] | None:
    """Predicted and measured energy of all nodes (J), ``None`` when not measured."""
    if entry.measured is None:
        return None
    return entry.predicted.energy_j, entry.measured.energy_j


def noise_pair(entry: Entry) -> tuple[float, float] | None:
    """Predicted and measured quantization noise of an entry that quantizes blocks or links,
    ``None`` otherwise."""
    lossy = entry.quantized or entry.link_precision
    if entry.measured is None or entry.measured.noise is None or not lossy:
        return None
    return entry.noise, entry.measured.noise


def on_device_only(entry: Entry, device: str) -> bool:
    """Whether every block of ``entry`` runs on ``device``."""
    return all(node == device for node in entry.assignment.values())


def device_reference(entries: Iterable[Entry], device: str) -> Entry | None:
    """The measured fp32 all-on-device entry, a baseline preferred (``device-only``)."""
    candidates = [
        e
        for e in entries
        if e.measured is not None and not e.quantized and on_device_only(e, device)
    ]
    return min(candidates, key=lambda e: e.kind != "baseline", default=None)


def _scenario(name: str, device: str, entries: list[Entry]) -> ScenarioValidation:
    reference = device_reference(entries, device)
    measured = [e for e in entries if e.measured is not None]
    quantized_on_device = [e for e in measured if e.quantized and on_device_only(e, device)]
    return ScenarioValidation(
        name=name,
        device=device,
        latency=error_stats(entries, latency_pair),
        energy=error_stats(entries, energy_pair),
        best=_fastest_against(measured, reference),
        quantization_only=_fastest_against(quantized_on_device, reference),
    )


def _fastest_against(entries: list[Entry], reference: Entry | None) -> Gain | None:
    if reference is None or reference.measured is None:
        return None
    timed = [(e.measured.latency_s, e.id) for e in entries if e.measured is not None]
    if not timed:
        return None
    latency_s, fastest = min(timed)
    return Gain(
        entry=fastest,
        latency_s=latency_s,
        reference_entry=reference.id,
        reference_latency_s=reference.measured.latency_s,
    )
