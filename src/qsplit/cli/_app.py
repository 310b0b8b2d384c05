"""The root typer application and the error boundary shared by every command."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from qsplit.errors import QsplitError

app = typer.Typer(
    name="qsplit",
    help="Plan and run quantization-aware DNN inference across device, edge and cloud.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _register_commands() -> None:
    # Imported for their side effect of adding commands to `app`.
    from qsplit.cli import (  # noqa: F401
        analyze_cmd,
        model_cmd,
        pareto_cmd,
        plan_cmd,
        prototype_cmd,
    )


def main() -> None:
    """Entry point: run the app, turning every QsplitError into one line and exit code 2."""
    _register_commands()
    try:
        app()
    except QsplitError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
