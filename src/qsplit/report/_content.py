"""What the report says, in order: verdict, per-scenario tables, figures, method, files.

The verdict comes first because it is what a reader opens the report for; the method section
says what the numbers mean, so that they can be judged without reading the code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from qsplit.report._document import (
    Block,
    Bullets,
    Document,
    Heading,
    Image,
    Link,
    Paragraph,
    Table,
)
from qsplit.report._figures import Figures
from qsplit.report._load import LoadedRun, referenced_files
from qsplit.report._rundir import RUN_FILE
from qsplit.report._summary import (
    error_sentence,
    gain_sentences,
    missed_targets,
    model_line,
    run_dilation,
    summary_rows,
)
from qsplit.report._tables import scenario_table
from qsplit.report._validation import Validation


def build_document(
    run: LoadedRun, validation: Validation, figures: Figures, report_dir: Path
) -> Document:
    """The whole report; links are relative to ``report_dir``."""

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, report_dir)).as_posix()

    return Document(
        title=f"qsplit run report: {Path(run.graph.model.path).name}",
        blocks=(
            *_summary(run, validation),
            *_scenarios(run, validation),
            *_figures(run, figures, rel),
            *_method(run),
            Heading("Files"),
            Bullets(
                tuple(
                    Link(name, rel(run.run_dir / name))
                    for name in (RUN_FILE, *referenced_files(run.index))
                )
            ),
        ),
    )


def _summary(run: LoadedRun, validation: Validation) -> list[Block]:
    target = validation.target_mape_pct
    blocks: list[Block] = [
        Heading("Summary"),
        Paragraph(f"Model: {model_line(run)}."),
        *(Paragraph(text, strong=True) for text in missed_targets(validation)),
        Bullets(
            (
                error_sentence("Latency", validation.latency, run, target),
                error_sentence("Energy", validation.energy, run, target),
                error_sentence("Quantization noise", validation.noise, run, None),
            )
        ),
        Paragraph("Measured gains against fp32 inference on the device alone:"),
        Bullets(tuple(gain_sentences(run, validation))),
        Table(("item", "value"), tuple(summary_rows(run, validation))),
    ]
    if run.index.settings:
        blocks += [
            Heading("Settings", 3),
            Table(("setting", "value"), tuple(_setting_rows(run.index.settings))),
        ]
    return blocks


def _setting_rows(settings: dict[str, object], prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings flattened to dotted keys (``machine.cpus``), values written briefly."""
    rows: list[tuple[str, str]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _setting_rows(value, f"{name}.")
        elif isinstance(value, list | tuple):
            rows.append((name, ", ".join(map(_brief, value))))
        else:
            rows.append((name, _brief(value)))
    return rows


def _brief(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _scenarios(run: LoadedRun, validation: Validation) -> list[Block]:
    blocks: list[Block] = []
    nodes_of = {s.name: s.nodes for s in run.index.scenarios}
    for scenario in validation.scenarios:
        nodes = nodes_of[scenario.name]
        blocks += [
            Heading(f"Scenario {scenario.name}: {', '.join(nodes)}"),
            Paragraph(
                f"Requests start and end on {scenario.device}. Blocks are numbered in "
                "topological order; errors are (predicted − measured) / measured; "
                "“vs device-only” is the fp32 device-only measured latency over this entry's."
            ),
            scenario_table(run, scenario),
        ]
        failed = [
            f"{e.label}: {e.error or 'no measurement'}"
            for e in run.index.entries
            if e.scenario == scenario.name and e.measured is None
        ]
        if failed:
            blocks += [Paragraph("Not measured:"), Bullets(tuple(failed))]
    return blocks


def _figures(run: LoadedRun, figures: Figures, rel: Callable[[Path], str]) -> list[Block]:
    blocks: list[Block] = [
        Heading("Figures"),
        Heading("Predicted against measured", 3),
        Paragraph(
            "Each point is one measured entry; on the diagonal the cost model was exact, inside "
            "the grey band it was within the 10 % target. Colour: scenario; marker: kind."
        ),
        Image(rel(figures.latency_accuracy), "predicted vs measured latency"),
        Image(rel(figures.energy_accuracy), "predicted vs measured energy"),
        Heading("Latency against energy", 3),
        Paragraph(
            "Filled points are measured, hollow ones predicted; lines join the entries no other "
            "entry beats in both latency and energy (solid: measured, dashed: predicted)."
        ),
        Image(rel(figures.pareto), "Pareto fronts per scenario"),
        Heading("Gains against device-only", 3),
        Image(rel(figures.gains), "measured latency and energy per entry"),
    ]
    if figures.placements:
        blocks += [
            Heading("Placements", 3),
            Paragraph(
                "Each plan over the model's block graph, left to right in data-flow order; "
                "colour: the node a block runs on; hatched with a thick outline: quantized."
            ),
        ]
        for entry_id, path in figures.placements.items():
            entry = run.entry(entry_id)
            blocks.append(Image(rel(path), f"placement of {entry.label} ({entry.scenario})"))
    return blocks


def _method(run: LoadedRun) -> list[Block]:
    measured = [e.measured for e in run.index.entries if e.measured is not None]
    requests = sorted({m.requests for m in measured})
    failed = sum(m.failed for m in measured)
    diffs = [m.max_abs_diff for m in measured if m.max_abs_diff is not None]
    points = [
        f"Each entry was deployed on the agents and sent "
        f"{_span(requests)} requests ({failed} failed in all); latencies are the medians of "
        "end-to-end request times, from the device sending the input to the device holding "
        "every output (90th percentiles are in run.json).",
        "Energy is not metered: it is the cost model's prices applied to the measured times, "
        "i.e. each node's compute power × its median compute time plus each sender's transmit "
        "power × the median transfer time of each link. Device energy is the device's share. "
        "Its error therefore reflects time prediction errors, not the power figures.",
        "Predictions are the cost model's prices of the same configuration, from the profiles "
        "and link measurements listed under Files.",
        "Nodes and links are emulated on one machine: each node's agent pads every component "
        "run to the node's speed (its reference time — YOLO11n fp32 in ONNX Runtime CPU — over "
        "the host's, measured when the testbed started; settings `testbed.*`), and each "
        "directed link passes through a user-space proxy that adds "
        "the link's latency and limits its rate (see the tables).",
    ]
    dilation = run_dilation(run)
    if dilation != 1:
        points.append(
            f"The run was time-dilated by {dilation:g} (`qsplit demo --dilation`): every node "
            f"and link of the testbed ran {dilation:g}× slower than the scenario's, for a host "
            "too slow to emulate them as they are. Times and energies in this report are the "
            f"dilated ones (divide by {dilation:g} for the scenario's); errors and speed-ups "
            "are unaffected."
        )
    if diffs:
        points.append(
            f"Outputs were checked against the whole model: largest absolute difference "
            f"{max(diffs):.3g} over {len(diffs)} checked entries (quantized entries differ by "
            "their quantization noise)."
        )
    if any(m.noise is not None for m in measured):
        points.append(
            "Quantization noise is measured as the noise model defines it: the mean absolute "
            "difference between the deployed plan's output and the whole fp32 model's, "
            "averaged over the noise model's evaluation images; the prediction is the noise "
            "model's value for the plan's int8 blocks."
        )
    return [
        Heading("How it was measured"),
        Bullets(tuple(points)),
        *_testbed_tables(run),
    ]


def _span(values: list[int]) -> str:
    if not values:
        return "no"
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def _testbed_tables(run: LoadedRun) -> list[Table]:
    """Each scenario's emulated nodes and the links between them."""
    scenarios = [(s.name, run.infras[s.name], set(s.nodes)) for s in run.index.scenarios]
    nodes = tuple(
        (
            name,
            node.name,
            node.role,
            "–" if node.reference_time_s is None else f"{node.reference_time_s * 1e3:.0f} ms",
            f"{node.compute_power_w:g} W",
            f"{node.transmit_power_w:g} W",
        )
        for name, infra, members in scenarios
        for node in infra.nodes
        if node.name in members
    )
    links = tuple(
        (
            name,
            f"{link.source} → {link.target}",
            f"{link.latency_s * 1e3:g} ms",
            f"{link.bandwidth_bytes_per_s / 1e6:g} MB/s",
        )
        for name, infra, members in scenarios
        for link in infra.links
        if {link.source, link.target} <= members
    )
    tables = [
        Table(
            ("scenario", "node", "role", "reference time", "compute power", "transmit power"),
            nodes,
            right_aligned=frozenset({3, 4, 5}),
        )
    ]
    if links:
        tables.append(
            Table(
                ("scenario", "link", "latency", "bandwidth"),
                links,
                right_aligned=frozenset({2, 3}),
            )
        )
    return tables
