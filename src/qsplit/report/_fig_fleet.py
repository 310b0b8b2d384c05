"""Figures of a fleet demo: the configurations side by side, and the queueing model checked.

Four PNGs: throughput and p95 per configuration (measured bars, predicted markers), utilisation
per shared node, the measured latency CDF of each configuration, and predicted against measured
p50/p95 (fleet and classes) with the ±15 % band the issue asks for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qsplit.report._figstyle import colours, new_figure, save
from qsplit.report._fleet import FLEET_TOLERANCE, FleetResult
from qsplit.serve import FleetMeasurement


def plot_fleet(
    results: Sequence[FleetResult], measurements: Sequence[FleetMeasurement], out: Path
) -> tuple[Path, ...]:
    """Write the four fleet figures into ``out``; returns their paths."""
    return (
        _bars(results, out / "fleet-throughput-p95.png"),
        _utilisation(results, out / "fleet-utilisation.png"),
        _cdf(measurements, out / "fleet-latency-cdf.png"),
        _validation(results, out / "fleet-predicted-measured.png"),
    )


def _bars(results: Sequence[FleetResult], path: Path) -> Path:
    figure = new_figure(max(5.0, 1.1 * len(results) + 2), 4.2)
    left, right = figure.subplots(1, 2)
    labels = [r.label for r in results]
    positions = np.arange(len(results))
    palette = colours(labels)
    bars = left.bar(
        positions, [r.throughput_hz for r in results], color=[palette[x] for x in labels]
    )
    left.bar_label(bars, [f"{r.throughput_hz:.2f}" for r in results], fontsize=7)
    left.scatter(positions, [r.offered_hz for r in results], marker="_", s=300, color="black")
    left.set_ylabel("completed requests / s (bar); offered (—)", fontsize=8)
    measured_ms = [_ms(r.p95_s.measured) for r in results]
    right.bar(positions, measured_ms, color=[palette[x] for x in labels])
    predicted = [(i, _ms(r.p95_s.predicted)) for i, r in enumerate(results) if not r.saturated]
    if predicted:
        right.scatter(*zip(*predicted, strict=True), marker="D", color="black", label="predicted")
        right.legend(fontsize=7)
    right.set_ylabel("p95 latency (ms), measured", fontsize=8)
    for axes in (left, right):
        axes.set_xticks(positions)
        axes.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        axes.margins(y=0.15)
    figure.suptitle("configurations under the same seeded arrivals", fontsize=9)
    return save(figure, path)


def _utilisation(results: Sequence[FleetResult], path: Path) -> Path:
    nodes = list(dict.fromkeys(n.node for r in results for n in r.nodes))
    figure = new_figure(max(5.0, 1.6 * len(nodes) * max(len(results), 1) / 3 + 2), 4.0)
    axes = figure.subplots()
    width = 0.8 / max(len(results), 1)
    palette = colours(r.label for r in results)
    for i, r in enumerate(results):
        by_node = {n.node: n.utilisation for n in r.nodes}
        x = np.arange(len(nodes)) + (i - (len(results) - 1) / 2) * width
        measured = [by_node[k].measured if k in by_node else 0.0 for k in nodes]
        predicted = [by_node[k].predicted if k in by_node else 0.0 for k in nodes]
        axes.bar(x, measured, width, color=palette[r.label], label=r.label)
        axes.scatter(x, predicted, marker="D", s=14, color="black", zorder=3)
    axes.axhline(1.0, color="red", linestyle=":", linewidth=0.8)
    axes.set_xticks(np.arange(len(nodes)))
    axes.set_xticklabels(nodes)
    axes.set_ylabel("utilisation ρ: measured (bar), predicted (◆)", fontsize=8)
    _legend(axes)
    return save(figure, path)


def _cdf(measurements: Sequence[FleetMeasurement], path: Path) -> Path:
    figure = new_figure(6.0, 4.0)
    axes = figure.subplots()
    palette = colours(m.label for m in measurements)
    for m in measurements:
        latencies = np.sort(m.latencies()) * 1e3
        if latencies.size:
            steps = np.arange(1, latencies.size + 1) / latencies.size
            axes.step(latencies, steps, where="post", color=palette[m.label], label=m.label)
    axes.axhline(0.95, color="grey", linestyle="--", linewidth=0.6)
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log)")
    axes.set_ylabel("fraction of completed requests")
    _legend(axes)
    return save(figure, path)


def _validation(results: Sequence[FleetResult], path: Path) -> Path:
    figure = new_figure(5.2, 5.0)
    axes = figure.subplots()
    palette = colours(r.label for r in results)
    points = []
    for r in results:
        if r.saturated:
            continue
        for name, q in r.quantities().items():
            if q.error is None:
                continue
            marker = "o" if name.endswith("p50") else "^"
            filled = name.startswith("fleet")
            axes.scatter(
                _ms(q.measured),
                _ms(q.predicted),
                marker=marker,
                color=palette[r.label] if filled else "none",
                edgecolors=palette[r.label],
                label=r.label if name == "fleet p50" else None,
            )
            points += [_ms(q.measured), _ms(q.predicted)]
    if points:
        low, high = min(points) * 0.8, max(points) * 1.25
        line = np.array([low, high])
        axes.plot(line, line, color="black", linewidth=0.8)
        for factor in (1 - FLEET_TOLERANCE, 1 + FLEET_TOLERANCE):
            axes.plot(line, line * factor, color="grey", linestyle="--", linewidth=0.6)
        axes.set_xlim(low, high)
        axes.set_ylim(low, high)
        axes.set_xscale("log")
        axes.set_yscale("log")
        _legend(axes)
    axes.set_xlabel("measured (ms)")
    axes.set_ylabel("predicted (ms)")
    axes.set_title(
        f"p50 (○) and p95 (△); filled: fleet-wide; dashed: ±{FLEET_TOLERANCE:.0%}", fontsize=8
    )
    return save(figure, path)


def _legend(axes) -> None:
    """A legend where something was labelled: a short run may measure nothing to label."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)


def _ms(seconds: float) -> float:
    return seconds * 1e3 if math.isfinite(seconds) else math.nan
