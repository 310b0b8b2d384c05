"""``write_report``: a run directory in, ``report/`` with Markdown, HTML, figures and JSON out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qsplit._jsonio import write_json
from qsplit.report._content import build_document
from qsplit.report._figures import draw_figures
from qsplit.report._html import to_html
from qsplit.report._load import LoadedRun, load_run
from qsplit.report._markdown import to_markdown
from qsplit.report._validation import (
    VALIDATION_KIND,
    VALIDATION_SCHEMA_VERSION,
    Validation,
    validate,
)

REPORT_DIR = "report"
IMG_DIR = "img"


@dataclass(frozen=True)
class Report:
    """What :func:`build_report` wrote, with what it found, for callers that show it too."""

    markdown: Path
    html: Path
    validation_file: Path
    run: LoadedRun
    validation: Validation


def write_report(run_dir: Path) -> Path:
    """Write ``<run dir>/report/report.md`` (and ``report.html``, ``validation.json``, the
    figures) from the run directory's saved files alone; returns the Markdown file's path."""
    return build_report(run_dir).markdown


def build_report(run_dir: str | Path) -> Report:
    """:func:`write_report`, returning everything it computed."""
    run = load_run(run_dir)
    validation = validate(run.index, run.devices)
    report_dir = run.run_dir / REPORT_DIR
    img_dir = report_dir / IMG_DIR
    figures = draw_figures(run, validation, img_dir)
    # Figures of entries a previous report had but this run lacks would linger otherwise.
    for stale in set(img_dir.glob("*.png")) - set(figures.all()):
        stale.unlink()
    document = build_document(run, validation, figures, report_dir)
    markdown = report_dir / "report.md"
    markdown.write_text(to_markdown(document))
    html = report_dir / "report.html"
    html.write_text(to_html(document))
    validation_file = write_json(
        report_dir / "validation.json",
        VALIDATION_KIND,
        VALIDATION_SCHEMA_VERSION,
        validation.to_dict(),
    )
    return Report(markdown, html, validation_file, run, validation)
