"""The Pareto front as a picture: latency against energy, coloured by predicted noise.

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so it works headless
and leaves pyplot's global state alone.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from qsplit.plan._pareto import ParetoFront


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
        if point.origin in ("latency-optimum", "energy-optimum"):
            label = "fastest" if point.origin == "latency-optimum" else "least energy"
            axes.annotate(
                label,
                (point.latency_s, point.energy_j),
                fontsize=8,
                xytext=(6, 6),
                textcoords="offset points",
            )
    colorbar = figure.colorbar(scatter, ax=axes)
    colorbar.set_label("predicted quantization noise")
    axes.set_xlabel(f"latency per inference (s, {front.latency_model} model)")
    axes.set_ylabel("energy per inference, all nodes (J)")
    axes.set_title(
        title or f"Pareto front: {len(points)} plans ({front.granularity} granularity)",
        fontsize=10,
    )
    axes.grid(True, linewidth=0.3, alpha=0.6)
    figure.savefig(path)
    return path
