"""``qsplit report RUN_DIR``: rebuild a run's report from its saved files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from qsplit.cli._app import app, console
from qsplit.report import build_report, summary_rows


@app.command("report")
def report_command(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory written by qsplit demo.", metavar="RUN_DIR")
    ],
) -> None:
    """Write RUN_DIR/report/ (report.md, report.html, validation.json, figures) from run.json
    and the files it references; print the summary.

    Example: qsplit report runs/2026-01-01-yolo11n
    """
    with console.status("drawing figures…"):
        report = build_report(run_dir)
    table = Table(title=f"report of {run_dir}")
    table.add_column("item")
    table.add_column("value")
    for item, value in summary_rows(report.run, report.validation):
        # Plain Text: entry labels may contain [brackets] that rich would read as markup.
        table.add_row(Text(item), Text(value), style="red" if "MISSED" in value else None)
    console.print(table)
    # Unwrapped, so that the path can be copied from any terminal width.
    console.print(
        f"Report written to [bold]{report.markdown}[/] (and report.html beside it)",
        soft_wrap=True,
    )
