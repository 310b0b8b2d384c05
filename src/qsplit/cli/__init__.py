"""The ``qsplit`` command line: parse, call one library function, render.

Each command group lives in its own ``*_cmd`` module and registers itself on :data:`app`.
"""

from qsplit.cli._app import app, main

__all__ = ["app", "main"]
