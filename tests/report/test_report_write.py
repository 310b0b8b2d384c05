"""The written report: files, figures, links and the content they must carry."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import synthetic
from qsplit.model import analyze
from qsplit.report import Report, RunIndex, write_report
from qsplit.report._fig_placement import LABEL_LIMIT, layered_layout, plot_placement
from qsplit.report._figstyle import colours

pytest_plugins = ["report_run"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _image_links(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def test_report_files_and_figures(report: Report) -> None:
    run_dir = report.run.run_dir
    assert report.markdown == run_dir / "report" / "report.md"
    assert report.html.is_file()
    figures = sorted((run_dir / "report" / "img").glob("*.png"))
    names = {p.name for p in figures}
    assert {"accuracy-latency.png", "accuracy-energy.png", "pareto.png", "gains.png"} <= names
    assert len([n for n in names if n.startswith("placement-")]) == 3  # one per plan entry
    for figure in figures:
        assert figure.read_bytes()[:8] == PNG_MAGIC


def test_markdown_mentions_every_entry_and_links_existing_images(report: Report) -> None:
    markdown = report.markdown.read_text()
    for entry in report.run.index.entries:
        assert f"| {entry.label} | {entry.kind} |" in markdown
    assert "tt failed: agent edge crashed" in markdown
    links = _image_links(markdown)
    assert len(links) == 7
    for link in links:
        assert not Path(link).is_absolute()
        assert (report.markdown.parent / link).is_file()


def test_markdown_states_numbers_and_the_missed_target(report: Report) -> None:
    markdown = report.markdown.read_text()
    assert "**Target missed: energy MAPE is 15.0 %, above the 10 % target.**" in markdown
    assert "Latency: predictions are off by 7.0 % on average" in markdown
    assert "worst: tt plan (three-tier) at -15.0 %" in markdown
    assert (
        "three-tier, fastest measured: tt plan took 200.0 ms against 1.00 s for tt device-only: "
        "5.00× (80.0 % less latency)."
    ) in markdown
    assert "local, quantization alone on device: local int8 took 500.0 ms" in markdown
    row = "| device 0–1 · edge 2–5 · cloud 6–9 | 2 | – | 170.0 ms | 200.0 ms | -15.0 % |"
    assert row in markdown
    assert "| machine.load | 1.5, 0.25 |" in markdown and "| total_s | 12.35 |" in markdown
    assert "Quantization noise: predictions are off by 22.5 % on average" in markdown
    assert "| 0.02 / 0.016 |" in markdown and "| 0.01 / – |" in markdown  # tt failed: unmeasured


def test_html_carries_the_same_content(report: Report) -> None:
    html = report.html.read_text()
    markdown = report.markdown.read_text()
    assert html.startswith("<!DOCTYPE html>")
    rules = re.findall(r"^\| -{3}:?(?: \| -{3}:?)* \|$", markdown, flags=re.MULTILINE)
    assert html.count("<table>") == len(rules) > 0
    assert html.count("<img ") == len(_image_links(markdown))
    for cell in ("tt best-split", "device 0–1 · edge 2–9", "+25.0 %", "7.0 %", "Target missed"):
        assert cell in html and cell in markdown


def test_validation_json(report: Report) -> None:
    data = json.loads(report.validation_file.read_text())
    assert data["kind"] == "validation" and data["schema_version"] == 1
    assert data["latency"]["mape_pct"] == report.validation.latency.mape_pct
    assert data["energy"]["meets_target"] is False
    assert abs(data["noise"]["mape_pct"] - 22.5) < 1e-9
    tiers = next(s for s in data["scenarios"] if s["name"] == "three-tier")
    assert tiers["best"]["speedup"] == report.validation.scenario("three-tier").best.speedup
    assert tiers["quantization_only"] is None


def test_stale_figures_are_removed(run_dir: Path) -> None:
    stale = run_dir / "report" / "img" / "placement-99-gone.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG_MAGIC)
    write_report(run_dir)
    assert not stale.exists()


def test_large_graph_placement_is_drawn_without_labels(tmp_path: Path, report: Report) -> None:
    model_path = synthetic.save(synthetic.random_dag(3, 90), tmp_path / "dag.onnx")
    _, graph = analyze(str(model_path), granularity="node")
    assert len(graph.blocks) > LABEL_LIMIT
    order = graph.block_names
    big = replace(
        report.run.index.entries[0],
        assignment={b: "device" if i < len(order) // 2 else "edge" for i, b in enumerate(order)},
        quantized=order[:5],
    )
    layout = layered_layout(graph.dag, order)
    assert all(layout[a][0] < layout[b][0] for a, b in graph.dag.edges)
    path = plot_placement(graph, layout, big, colours(["device", "edge"]), tmp_path / "p.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_a_dilated_run_says_its_times_are_dilated(run_dir: Path, report: Report) -> None:
    index = RunIndex.load(run_dir)
    replace(index, settings={**index.settings, "dilation": 2.0}).save(run_dir)
    markdown = write_report(run_dir).read_text()
    assert "| time dilation | 2× (times as run; ÷ 2 for the scenario's) |" in markdown
    assert "The run was time-dilated by 2" in markdown
    assert "dilat" not in report.markdown.read_text()  # a run without the setting
