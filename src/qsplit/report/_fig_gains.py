"""Measured latency and energy of every entry beside the device-only reference.

This is the headline picture: how much faster (and at what energy) the plans ran than local
inference, as measured. One column per scenario; the dashed line is the scenario's fp32
device-only measurement and latency bars carry their speed-up over it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from qsplit.report._figstyle import new_figure, save
from qsplit.report._format import speedup
from qsplit.report._rundir import Entry, Scenario
from qsplit.report._validation import Validation, device_reference


def plot_gains(
    scenarios: Sequence[Scenario],
    entries: Sequence[Entry],
    validation: Validation,
    scenario_colours: Mapping[str, str],
    path: Path,
) -> Path:
    """Bars of measured latency (top row) and energy (bottom row), one column per scenario."""
    widths = [max(2.5, 0.45 * sum(e.scenario == s.name for e in entries) + 1.2) for s in scenarios]
    figure = new_figure(max(5.0, sum(widths)), 6.4)
    grid = figure.add_gridspec(2, max(len(scenarios), 1), width_ratios=widths or None)
    for column, scenario in enumerate(scenarios):
        measured = [e for e in entries if e.scenario == scenario.name and e.measured is not None]
        reference = device_reference(measured, validation.scenario(scenario.name).device)
        for row, (quantity, unit) in enumerate((("latency_s", "s"), ("energy_j", "J"))):
            axes = figure.add_subplot(grid[row, column])
            values = [getattr(e.measured, quantity) for e in measured]
            positions = range(len(measured))
            bars = axes.bar(
                positions,
                values,
                color=scenario_colours[scenario.name],
                edgecolor="black",
                linewidth=0.4,
            )
            for bar, entry in zip(bars, measured, strict=True):
                bar.set_hatch("//" if entry.kind == "baseline" else "")
            if reference is not None:
                base = getattr(reference.measured, quantity)
                axes.axhline(base, color="0.2", linestyle="--", linewidth=0.8)
                if quantity == "latency_s":
                    axes.bar_label(
                        bars, [speedup(base / v if v > 0 else None) for v in values], fontsize=6
                    )
            axes.set_ylabel(f"measured {quantity.split('_')[0]} ({unit})", fontsize=8)
            axes.set_xticks(list(positions))
            axes.set_xticklabels(
                [e.label for e in measured] if row else [],
                rotation=40,
                ha="right",
                fontsize=7,
            )
            axes.margins(y=0.15)
            if row == 0:
                axes.set_title(scenario.name, fontsize=9)
    figure.suptitle("measured per entry; dashed: fp32 device-only; hatched: baselines", fontsize=9)
    return save(figure, path)
