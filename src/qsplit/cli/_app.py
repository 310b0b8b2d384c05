"""The root typer application and the error boundary shared by every command."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

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


def main() -> None:
    """Entry point: run the app, turning every QsplitError into one line and exit code 2."""
    try:
        app()
    except QsplitError as exc:
        # The message is plain text: ONNX errors contain [brackets] rich would read as markup.
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        sys.exit(2)
