"""``qsplit keys generate``: a CURVE key pair for one node (docs/runtime.md, Security)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsplit.cli._app import app, console

keys_app = typer.Typer(
    help="CURVE key pairs that authenticate and encrypt the runtime's connections.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def generate_command(
    name: Annotated[str, typer.Argument(help="Node name, as in the infra file.")],
    out: Annotated[Path, typer.Option(help="Folder to write NAME.key and NAME.pub to.")] = Path(),
    force: Annotated[bool, typer.Option(help="Replace an existing pair.")] = False,
) -> None:
    """Write NAME.key (secret, mode 0600: keep it on that node) and NAME.pub (its line for the
    infra file).

    Example: qsplit keys generate edge --out keys/
    """
    from qsplit.runtime import generate_keys

    files = generate_keys(out / name, force=force)
    console.print(f"secret key: {files.secret} (mode 0600, stays on node {name!r})")
    console.print(f"public key: {files.public}; under node {name!r} in the infra file write:")
    console.print(f'  curve_public_key: "{files.public_key}"', markup=False, highlight=False)
