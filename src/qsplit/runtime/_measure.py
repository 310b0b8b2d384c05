"""Measurements of live runs: one record per request, a summary over many, saved as JSON.

Transfer times are measured by the receiver as arrival wall time minus the sender's
``sent_at`` (``time.time``): exact on one machine, only as good as clock sync (NTP) across
machines. Compute times are per component run, after padding (emulated nodes). Energy is the cost
model's :func:`qsplit.plan.energy_per_node` applied to these measured times, so a run's energy
and a plan's predicted energy mean the same thing.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from qsplit._jsonio import write_json
from qsplit.infra import Infra
from qsplit.plan import Predicted, energy_per_node

RESULTS_KIND = "runtime-results"
RESULTS_SCHEMA_VERSION = 1
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class ComponentRun:
    component: str
    node: str
    compute_s: float


@dataclass(frozen=True)
class Transfer:
    """Tensors moved over one link for one request."""

    source: str
    target: str
    bytes: int
    transfer_s: float


@dataclass(frozen=True)
class RequestRecord:
    """What one inference cost, end to end and per node and link."""

    request: str
    latency_s: float
    runs: tuple[ComponentRun, ...]
    transfers: tuple[Transfer, ...]
    error: str | None = None

    def compute_s_per_node(self) -> dict[str, float]:
        """Compute time of this request on each node (all its components there)."""
        totals: dict[str, float] = {}
        for run in self.runs:
            totals[run.node] = totals.get(run.node, 0.0) + run.compute_s
        return totals

    def transfer_s_per_link(self) -> dict[tuple[str, str], float]:
        """Transfer time on each link ``(sender, receiver)``, summed over the messages of this
        request; a node's own outputs to a requester on the same node cost nothing, as in the
        cost model."""
        return self._per_link(lambda t: t.transfer_s)

    def bytes_per_link(self) -> dict[tuple[str, str], int]:
        """Bytes on each link, summed over the messages of this request (same links as
        :meth:`transfer_s_per_link`)."""
        return self._per_link(lambda t: t.bytes)

    def _per_link(self, value: Callable[[Transfer], _N]) -> dict[tuple[str, str], _N]:
        totals: dict[tuple[str, str], _N] = {}
        for t in self.transfers:
            if t.source != t.target:
                link = (t.source, t.target)
                totals[link] = totals.get(link, 0) + value(t)
        return totals

    def energy_j(self, infra: Infra) -> tuple[float, float]:
        """Energy of all nodes and of the device, priced by the cost model at measured times."""
        energy = energy_per_node(infra, self.compute_s_per_node(), self.transfer_s_per_link())
        return sum(energy.values()), energy[infra.device]

    def to_dict(self, infra: Infra | None = None) -> dict[str, Any]:
        """The record as JSON, with its energy when ``infra`` gives the prices."""
        energy = {}
        if infra is not None and self.error is None:
            energy = dict(zip(("energy_j", "device_energy_j"), self.energy_j(infra), strict=True))
        return {
            "request": self.request,
            "latency_s": self.latency_s,
            **energy,
            "error": self.error,
            "runs": [vars(r).copy() for r in self.runs],
            "transfers": [
                {"from": t.source, "to": t.target, "bytes": t.bytes, "transfer_s": t.transfer_s}
                for t in self.transfers
            ],
        }


def summarize(
    records: Sequence[RequestRecord],
    wall_s: float,
    *,
    infra: Infra | None = None,
    predicted: Predicted | None = None,
) -> dict[str, Any]:
    """Aggregate over successful requests: latency quantiles, per-node and per-link medians
    (of each request's totals, as the cost model counts them); with ``infra``, energy
    quantiles; with ``predicted`` (a plan's), measured medians beside the predictions."""
    ok = [r for r in records if r.error is None]
    per_node: dict[str, list[float]] = {}
    per_link: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for record in ok:
        for node, total in record.compute_s_per_node().items():
            per_node.setdefault(node, []).append(total)
        sent = record.bytes_per_link()
        for link, seconds in record.transfer_s_per_link().items():
            per_link.setdefault(link, []).append((sent[link], seconds))
    summary: dict[str, Any] = {
        "requests": len(records),
        "failed": len(records) - len(ok),
        "wall_s": wall_s,
        "throughput_per_s": len(ok) / wall_s if wall_s > 0 else None,
        "latency_s": _quantiles([r.latency_s for r in ok]),
        "compute_s_per_node": {n: statistics.median(v) for n, v in sorted(per_node.items())},
        "links": [
            {
                "from": source,
                "to": target,
                "bytes_per_request": statistics.median(b for b, _ in totals),
                "transfer_s": statistics.median(s for _, s in totals),
            }
            for (source, target), totals in sorted(per_link.items())
        ],
    }
    if infra is not None:
        energies = [r.energy_j(infra) for r in ok]
        summary["energy_j"] = _quantiles([e for e, _ in energies])
        summary["device_energy_j"] = _quantiles([d for _, d in energies])
    if predicted is not None:
        summary["vs_predicted"] = {
            name: {
                "predicted": getattr(predicted, name),
                "measured_median": None if summary.get(name) is None else summary[name]["median"],
            }
            for name in ("latency_s", "energy_j", "device_energy_j")
        }
    return summary


def _quantiles(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    values = sorted(values)
    return {
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "min": values[0],
        "p90": values[min(len(values) - 1, int(0.9 * len(values)))],
        "max": values[-1],
    }


def save_results(
    path: str | Path,
    records: Sequence[RequestRecord],
    wall_s: float,
    meta: dict[str, Any],
    *,
    infra: Infra | None = None,
    predicted: Predicted | None = None,
) -> Path:
    """Write every record and the summary as a ``runtime-results`` file (energy with
    ``infra``, the plan's predictions with ``predicted``)."""
    return write_json(
        path,
        RESULTS_KIND,
        RESULTS_SCHEMA_VERSION,
        {
            **meta,
            "predicted": None if predicted is None else vars(predicted).copy(),
            "summary": summarize(records, wall_s, infra=infra, predicted=predicted),
            "requests": [r.to_dict(infra) for r in records],
        },
    )
