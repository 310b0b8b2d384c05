"""Predicted against measured, one point per measured entry: how far off the cost model is.

Points on the diagonal were predicted exactly; the shaded band is the ±10 % validation target.
Axes turn logarithmic when values span more than :data:`LOG_RANGE`, because the device-only
and the fastest plans can differ by an order of magnitude and would otherwise crowd a corner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qsplit.report._figstyle import KIND_MARKERS, new_figure, save
from qsplit.report._rundir import Entry
from qsplit.report._validation import TARGET_MAPE_PCT

if TYPE_CHECKING:
    from matplotlib.lines import Line2D

LOG_RANGE = 20.0
"""Largest/smallest value above which both axes are logarithmic."""


def plot_accuracy(
    entries: Sequence[Entry],
    pair: Callable[[Entry], tuple[float, float] | None],
    quantity: str,
    unit: str,
    scenario_colours: Mapping[str, str],
    path: Path,
) -> Path:
    """Scatter predicted (y) against measured (x) ``quantity`` (e.g. ``"latency"``, ``"s"``)."""
    figure = new_figure(5.6, 4.6)
    axes = figure.add_subplot()
    points = [(e, p) for e in entries if (p := pair(e)) is not None and p[1] > 0]
    for entry, (predicted, measured) in points:
        axes.scatter(
            measured,
            predicted,
            color=scenario_colours[entry.scenario],
            marker=KIND_MARKERS[entry.kind],
            s=36,
            edgecolors="black",
            linewidths=0.4,
            zorder=3,
        )
    values = [v for _, p in points for v in p if v > 0]
    if values:
        low, high = min(values) / 1.3, max(values) * 1.3
        if high / low > LOG_RANGE:
            axes.set_xscale("log")
            axes.set_yscale("log")
        x = np.geomspace(low, high, 50)
        band = TARGET_MAPE_PCT / 100
        axes.fill_between(x, x * (1 - band), x * (1 + band), color="0.85", zorder=1)
        axes.plot(x, x, color="0.3", linewidth=0.8, zorder=2)
        axes.set_xlim(low, high)
        axes.set_ylim(low, high)
    else:
        axes.text(0.5, 0.5, "no measured entries", ha="center", transform=axes.transAxes)
    axes.set_xlabel(f"measured {quantity} ({unit})")
    axes.set_ylabel(f"predicted {quantity} ({unit})")
    axes.set_title(f"predicted vs measured {quantity}", fontsize=10)
    axes.grid(True, linewidth=0.3, alpha=0.6)
    axes.legend(handles=_legend(scenario_colours), fontsize=7, loc="upper left")
    return save(figure, path)


def _legend(scenario_colours: Mapping[str, str]) -> list[Line2D]:
    from matplotlib.lines import Line2D

    def handle(label: str, colour: str, marker: str) -> Line2D:
        return Line2D([], [], color=colour, marker=marker, linestyle="", label=label)

    return [
        *(handle(name, colour, "o") for name, colour in scenario_colours.items()),
        *(handle(kind, "0.5", marker) for kind, marker in KIND_MARKERS.items()),
        Line2D([], [], color="0.85", linewidth=6, label=f"±{TARGET_MAPE_PCT:g} %"),
    ]
