"""Measurements of live runs: one record per request, a summary over many, saved as JSON.

Transfer times are measured by the receiver as arrival wall time minus the sender's
``sent_at`` (``time.time``): exact on one machine, only as good as clock sync (NTP) across
machines. Compute times are per component run, after speed-factor emulation.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsplit._jsonio import write_json

RESULTS_KIND = "runtime-results"
RESULTS_SCHEMA_VERSION = 1


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "latency_s": self.latency_s,
            "error": self.error,
            "runs": [vars(r).copy() for r in self.runs],
            "transfers": [
                {"from": t.source, "to": t.target, "bytes": t.bytes, "transfer_s": t.transfer_s}
                for t in self.transfers
            ],
        }


def summarize(records: Sequence[RequestRecord], wall_s: float) -> dict[str, Any]:
    """Aggregate over successful requests: latency quantiles, per-node and per-link medians."""
    ok = [r for r in records if r.error is None]
    latencies = sorted(r.latency_s for r in ok)
    per_node: dict[str, list[float]] = {}
    per_link: dict[tuple[str, str], list[Transfer]] = {}
    for record in ok:
        node_total: dict[str, float] = {}
        for run in record.runs:
            node_total[run.node] = node_total.get(run.node, 0.0) + run.compute_s
        for node, total in node_total.items():
            per_node.setdefault(node, []).append(total)
        for t in record.transfers:
            per_link.setdefault((t.source, t.target), []).append(t)
    return {
        "requests": len(records),
        "failed": len(records) - len(ok),
        "wall_s": wall_s,
        "throughput_per_s": len(ok) / wall_s if wall_s > 0 else None,
        "latency_s": _quantiles(latencies),
        "compute_s_per_node": {n: statistics.median(v) for n, v in sorted(per_node.items())},
        "links": [
            {
                "from": source,
                "to": target,
                "bytes_per_request": statistics.median(t.bytes for t in ts) if ts else 0,
                "transfer_s": statistics.median(t.transfer_s for t in ts),
            }
            for (source, target), ts in sorted(per_link.items())
        ],
    }


def _quantiles(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "min": values[0],
        "p90": values[min(len(values) - 1, int(0.9 * len(values)))],
        "max": values[-1],
    }


def save_results(
    path: str | Path, records: Sequence[RequestRecord], wall_s: float, meta: dict[str, Any]
) -> Path:
    """Write every record and the summary as a ``runtime-results`` file."""
    return write_json(
        path,
        RESULTS_KIND,
        RESULTS_SCHEMA_VERSION,
        {
            **meta,
            "summary": summarize(records, wall_s),
            "requests": [r.to_dict() for r in records],
        },
    )
