"""Latency against energy per scenario: which entries are worth running at all.

An entry is dominated when another is at least as fast and as frugal; the non-dominated ones
are the trade-offs a user can choose between. Measured points are filled and their front is a
solid line; predicted points are hollow with a dashed front, so a prediction error shows as the
gap between the two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qsplit.report._figstyle import KIND_MARKERS, new_figure, save
from qsplit.report._rundir import Entry, Scenario

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def non_dominated(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates, by the first one.

    Among equal points, the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: points[i])
    front: list[int] = []
    for i in order:
        if not front or points[i][1] < points[front[-1]][1]:
            front.append(i)
    return front


def plot_pareto(
    scenarios: Sequence[Scenario],
    entries: Sequence[Entry],
    scenario_colours: Mapping[str, str],
    path: Path,
) -> Path:
    """One subplot per scenario: x = latency (s), y = energy (J), predicted and measured."""
    from matplotlib.lines import Line2D

    columns = min(len(scenarios), 3) or 1
    rows = math.ceil(len(scenarios) / columns) or 1
    figure = new_figure(4.2 * columns, 3.6 * rows)
    for i, scenario in enumerate(scenarios):
        axes = figure.add_subplot(rows, columns, i + 1)
        mine = [e for e in entries if e.scenario == scenario.name]
        _draw_scenario(axes, mine, scenario_colours[scenario.name])
        axes.set_title(f"{scenario.name} ({', '.join(scenario.nodes)})", fontsize=9)
        axes.set_xlabel("latency per inference (s)")
        axes.set_ylabel("energy per inference (J)")
        axes.grid(True, linewidth=0.3, alpha=0.6)
        axes.margins(0.12)
    figure.legend(
        handles=[
            Line2D([], [], color="0.3", marker="o", label="measured (front: solid)"),
            Line2D(
                [],
                [],
                color="0.3",
                marker="o",
                markerfacecolor="none",
                linestyle="--",
                label="predicted (front: dashed)",
            ),
            *(
                Line2D([], [], color="0.5", marker=m, linestyle="", label=k)
                for k, m in KIND_MARKERS.items()
            ),
        ],
        loc="outside lower center",
        ncols=4,
        fontsize=7,
    )
    return save(figure, path)


def _draw_scenario(axes: Axes, entries: Sequence[Entry], colour: str) -> None:
    predicted = [(e, (e.predicted.latency_s, e.predicted.energy_j)) for e in entries]
    measured = [
        (e, (e.measured.latency_s, e.measured.energy_j)) for e in entries if e.measured is not None
    ]
    for series, filled, style in ((predicted, False, "--"), (measured, True, "-")):
        for entry, (x, y) in series:
            axes.scatter(
                x,
                y,
                marker=KIND_MARKERS[entry.kind],
                s=30,
                facecolors=colour if filled else "none",
                edgecolors="black" if filled else colour,
                linewidths=0.4 if filled else 0.8,
                zorder=3,
            )
        points = [point for _, point in series]
        front = [points[i] for i in non_dominated(points)]
        axes.plot(*zip(*front, strict=True), linestyle=style, color=colour, linewidth=1, zorder=2)
