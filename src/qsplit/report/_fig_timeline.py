"""Latency over time for several strategies under one schedule of testbed changes.

One panel per strategy, sharing the time axis: each request is a dot at the time it was sent
(its latency on the y axis), coloured by the plan that ran it (one colour per plan across
panels); a lost request is a red cross
on the panel's top edge. Dashed vertical lines mark the strategy's plan switches; the schedule's
phases are shaded alternately and labelled on the top panel, so a reader sees what changed on
the testbed and when each strategy reacted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qsplit.report._figstyle import colours, new_figure, save
from qsplit.report._timeline import Phase, Timeline

_SHADES = ("#f2f2f2", "#fde9d9")


def plot_timelines(timelines: Sequence[Timeline], cut: Sequence[Phase], path: Path) -> Path:
    figure = new_figure(10.0, 1.3 + 1.9 * max(1, len(timelines)))
    axes_list = figure.subplots(max(1, len(timelines)), 1, sharex=True, squeeze=False)[:, 0]
    top = max((p.latency_s for t in timelines for p in t.points), default=1.0) * 1.15
    end = max([c.end_s for c in cut] + [p.at_s for t in timelines for p in t.points] + [1.0])
    plan_colours = colours(p.plan for t in timelines for p in t.points)
    for axes, timeline in zip(axes_list, timelines, strict=False):
        for i, phase in enumerate(cut):
            stop = end if i == len(cut) - 1 else phase.end_s
            axes.axvspan(phase.start_s, stop, color=_SHADES[i % 2], zorder=0, linewidth=0)
        for plan, colour in plan_colours.items():
            answered = [p for p in timeline.points if p.plan == plan and not p.lost]
            if not answered:
                continue
            axes.plot(
                [p.at_s for p in answered],
                [p.latency_s for p in answered],
                "o",
                markersize=3,
                color=colour,
                label=plan,
            )
        lost = [p for p in timeline.points if p.lost]
        if lost:
            axes.plot([p.at_s for p in lost], [top] * len(lost), "x", color="#d62728", label="lost")
        for at, _ in timeline.switches:
            axes.axvline(at, color="0.2", linestyle="--", linewidth=0.9)
        axes.set_ylim(0, top * 1.05)
        axes.set_ylabel("latency (s)", fontsize=8)
        axes.set_title(timeline.strategy, fontsize=9, loc="left")
        axes.legend(
            fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="plan", title_fontsize=6
        )
        axes.tick_params(labelsize=7)
    if len(axes_list):
        for i, phase in enumerate(cut[1:]):
            axes_list[0].annotate(
                phase.label,
                (phase.start_s, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, 2 + 9 * (i % 2)),  # neighbours alternate rows, so labels never overlap
                textcoords="offset points",
                fontsize=6,
                va="bottom",
            )
        axes_list[-1].set_xlabel("time since the schedule started (s)", fontsize=8)
        axes_list[-1].set_xlim(0, end)
    figure.suptitle(
        "latency per request; shaded: schedule phases; dashed: plan switches; x: lost",
        fontsize=9,
    )
    return save(figure, path)
