"""Every figure of a report, drawn into ``<run dir>/report/img/`` with stable file names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from qsplit.report._fig_accuracy import plot_accuracy
from qsplit.report._fig_gains import plot_gains
from qsplit.report._fig_pareto import plot_pareto
from qsplit.report._fig_placement import layered_layout, plot_placement
from qsplit.report._figstyle import colours
from qsplit.report._load import LoadedRun
from qsplit.report._validation import Validation, energy_pair, latency_pair


@dataclass(frozen=True)
class Figures:
    """Paths of the drawn PNG files."""

    latency_accuracy: Path
    energy_accuracy: Path
    pareto: Path
    gains: Path
    placements: dict[str, Path]
    """Plan entry id → its placement figure."""

    def all(self) -> list[Path]:
        return [
            self.latency_accuracy,
            self.energy_accuracy,
            self.pareto,
            self.gains,
            *self.placements.values(),
        ]


def draw_figures(run: LoadedRun, validation: Validation, img_dir: Path) -> Figures:
    """Draw every figure of ``run`` into ``img_dir``."""
    index = run.index
    scenario_colours = colours(s.name for s in index.scenarios)
    node_colours = colours(
        [
            *(run.devices.values()),
            *(n for s in index.scenarios for n in s.nodes),
            *(n for e in index.entries for n in e.assignment.values()),
        ]
    )
    layout = layered_layout(run.graph.dag, run.graph.block_names)
    plans = [(i, e) for i, e in enumerate(index.entries) if e.kind == "plan"]
    return Figures(
        latency_accuracy=plot_accuracy(
            index.entries,
            latency_pair,
            "latency",
            "s",
            scenario_colours,
            img_dir / "accuracy-latency.png",
        ),
        energy_accuracy=plot_accuracy(
            index.entries,
            energy_pair,
            "energy",
            "J",
            scenario_colours,
            img_dir / "accuracy-energy.png",
        ),
        pareto=plot_pareto(
            index.scenarios, index.entries, scenario_colours, img_dir / "pareto.png"
        ),
        gains=plot_gains(
            index.scenarios, index.entries, validation, scenario_colours, img_dir / "gains.png"
        ),
        placements={
            entry.id: plot_placement(
                run.graph, layout, entry, node_colours, img_dir / _placement_name(i, entry.id)
            )
            for i, entry in plans
        },
    )


def _placement_name(position: int, entry_id: str) -> str:
    """A file name safe on every file system, unique through the entry's position."""
    return f"placement-{position:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', entry_id)}.png"
