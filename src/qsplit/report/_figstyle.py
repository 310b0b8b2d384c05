"""What every report figure shares: a headless figure, stable colours, PNG output.

Figures are drawn on a bare :class:`~matplotlib.figure.Figure` with the Agg canvas, so the
report works without a display and leaves pyplot's global state alone. Colours are assigned
from one fixed palette in a fixed order, so a node or scenario has the same colour in every
figure of a report. matplotlib is imported when the first figure is drawn, not with the package:
the command line and the runtime import :mod:`qsplit.report` without drawing anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
KIND_MARKERS = {"plan": "o", "baseline": "s"}


def colours(names: Iterable[str]) -> dict[str, str]:
    """Name → colour, in first-seen order, cycling through the palette."""
    unique = list(dict.fromkeys(names))
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(unique)}


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
