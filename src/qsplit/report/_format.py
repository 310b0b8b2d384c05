"""How the report writes numbers and placements, shared by its tables, text and the CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def seconds(value: float | None) -> str:
    """A latency in ms below 1 s (where end-to-end latencies usually are), in s above."""
    if value is None:
        return "–"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def joules(value: float | None) -> str:
    """An energy with three significant digits."""
    if value is None:
        return "–"
    return f"{value:.3g} J"


def percent(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.1f} %" if signed else f"{value:.1f} %"


def speedup(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def index_ranges(indices: Sequence[int]) -> str:
    """Sorted block indices as runs: [0, 1, 2, 5, 7, 8] → '0–2, 5, 7–8'."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)


def placement(assignment: Mapping[str, str], order: Sequence[str]) -> str:
    """Where the blocks run, by topological index: 'device 0–7 · edge 8–33'.

    Nodes are listed in the order of their first block, so the text reads like the data flow.
    """
    by_node: dict[str, list[int]] = {}
    for i, block in enumerate(order):
        by_node.setdefault(assignment[block], []).append(i)
    return " · ".join(f"{node} {index_ranges(indices)}" for node, indices in by_node.items())
