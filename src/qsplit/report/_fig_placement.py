"""A plan drawn over the model: which node runs each block, and which blocks are quantized.

The block DAG is laid out left to right in topological layers (a block sits one column after
its latest predecessor), so the data flow reads like the model and a split shows as a colour
change along it. Blocks are numbered by topological index, the numbering the report's tables
use; graphs larger than :data:`LABEL_LIMIT` blocks are drawn without numbers, which would
only overlap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from qsplit.model import LayerGraph
from qsplit.report._figstyle import new_figure, save
from qsplit.report._rundir import Entry

if TYPE_CHECKING:
    from matplotlib.patches import Patch

LABEL_LIMIT = 60
"""Most blocks whose indices are written on the figure."""

Layout = dict[str, tuple[float, float]]


def layered_layout(dag: nx.DiGraph, order: Sequence[str]) -> Layout:
    """Block → (column, row): columns are topological layers; within a column, blocks are sorted
    by the mean row of their predecessors (fewer crossings), then by topological order."""
    rank = {name: i for i, name in enumerate(order)}
    layout: Layout = {}
    for column, members in enumerate(nx.topological_generations(dag)):

        def key(block: str) -> tuple[float, int]:
            rows = [layout[p][1] for p in dag.predecessors(block)]
            return (sum(rows) / len(rows) if rows else 0.0, rank[block])

        members = sorted(members, key=key)
        for row, block in enumerate(members):
            layout[block] = (float(column), row - (len(members) - 1) / 2)
    return layout


def plot_placement(
    graph: LayerGraph,
    layout: Layout,
    entry: Entry,
    node_colours: Mapping[str, str],
    path: Path,
) -> Path:
    """Draw ``entry``'s placement over ``graph``; ``layout`` from :func:`layered_layout`."""
    from matplotlib.collections import LineCollection

    order = graph.block_names
    columns = max(x for x, _ in layout.values()) + 1
    rows = max(abs(y) for _, y in layout.values()) * 2 + 1
    small = len(order) <= LABEL_LIMIT
    figure = new_figure(min(28.0, max(6.0, 0.45 * columns + 1.5)), min(12.0, 0.5 * rows + 2.2))
    axes = figure.add_subplot()
    axes.add_collection(
        LineCollection(
            [(layout[a], layout[b]) for a, b in graph.dag.edges],
            colors="0.6",
            linewidths=0.6 if small else 0.3,
            zorder=1,
        )
    )
    quantized = set(entry.quantized)
    for node in dict.fromkeys(entry.assignment[b] for b in order):
        for is_quantized in (False, True):
            blocks = [
                b for b in order if entry.assignment[b] == node and (b in quantized) == is_quantized
            ]
            if blocks:
                axes.scatter(
                    [layout[b][0] for b in blocks],
                    [layout[b][1] for b in blocks],
                    marker="s",
                    s=260 if small else 30,
                    color=node_colours[node],
                    edgecolors="black",
                    linewidths=(1.6 if small else 0.8) if is_quantized else 0.4,
                    hatch="////" if is_quantized else None,
                    zorder=2,
                )
    if small:
        for i, block in enumerate(order):
            axes.annotate(
                str(i),
                layout[block],
                ha="center",
                va="center",
                fontsize=6,
                zorder=3,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "linewidth": 0},
            )
    axes.set_axis_off()
    axes.margins(0.04, 0.15)
    axes.set_title(f"{entry.label} · {entry.scenario}", fontsize=10)
    figure.legend(
        handles=_legend(entry, node_colours), loc="outside lower center", ncols=4, fontsize=8
    )
    return save(figure, path)


def _legend(entry: Entry, node_colours: Mapping[str, str]) -> list[Patch]:
    from matplotlib.patches import Patch

    nodes = dict.fromkeys(entry.assignment.values())
    return [
        *(Patch(facecolor=node_colours[n], edgecolor="black", label=n) for n in nodes),
        Patch(facecolor="white", edgecolor="black", hatch="////", label="int8 (quantized)"),
    ]
