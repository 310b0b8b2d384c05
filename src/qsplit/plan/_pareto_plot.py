"""The Pareto front as a picture: latency against energy, coloured by predicted noise.

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so it works headless
and leaves pyplot's global state alone.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from qsplit.plan._pareto import ParetoFront

_OPTIMA = {"latency-optimum": ("fastest", (-10, -18)), "energy-optimum": ("least energy", (8, -16))}
"""Annotated points: label and text offset in points (below the point, where the front is empty)."""


def plot_front(front: ParetoFront, path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG of ``front``: x = latency (s), y = energy (J), colour = noise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(6.4, 4.4), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = front.points
    noise = [p.noise for p in points]
    scatter = axes.scatter(
        [p.latency_s for p in points],
        [p.energy_j for p in points],
        c=noise,
        cmap="viridis",
        vmin=min(noise, default=0.0),
        vmax=max(max(noise, default=0.0), 1e-12),
        s=36,
        edgecolors="black",
        linewidths=0.4,
    )
    for point in points:
        if point.origin in _OPTIMA:
            label, offset = _OPTIMA[point.origin]
            axes.annotate(
                label,
                (point.latency_s, point.energy_j),
                xytext=offset,
                textcoords="offset points",
                fontsize=8,
                arrowprops={"arrowstyle": "-", "linewidth": 0.5},
            )
    colorbar = figure.colorbar(scatter, ax=axes)
    colorbar.set_label("predicted quantization noise")
    axes.set_xlabel(f"latency per inference (s, {front.latency_model} model)")
    axes.set_ylabel("energy per inference, all nodes (J)")
    axes.set_title(
        title or f"Pareto front: {len(points)} plans ({front.granularity} granularity)",
        fontsize=10,
    )
    axes.margins(0.1)
    axes.grid(True, linewidth=0.3, alpha=0.6)
    figure.savefig(path)
    return path
