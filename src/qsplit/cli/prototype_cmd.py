"""``qsplit import-prototype``: the research prototype's measured data as qsplit input files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from qsplit.cli._app import app, console
from qsplit.errors import InputError


@app.command("import-prototype")
def import_prototype_cmd(
    directory: Annotated[
        Path,
        typer.Argument(help="Prototype data directory (holds results/ and energy_config.ini)."),
    ],
    model: Annotated[str, typer.Option(help="Model name under results/Model_Profile.")] = (
        "yolo11x-seg"
    ),
    out: Annotated[Path, typer.Option(help="Directory to write the qsplit files into.")] = Path(
        "prototype-import"
    ),
    granularity: Annotated[
        str, typer.Option(help="'node' (one block per ONNX node) or 'block' (coarsened).")
    ] = "node",
    cpus: Annotated[
        list[str] | None,
        typer.Option(help="ROLE=CPUS to pick an exec profile, e.g. Client=0.5 (repeatable)."),
    ] = None,
) -> None:
    """Convert the prototype's graph, exec profiles, regressor and energy config.

    Writes layergraph.json, profiles/{device,edge,cloud}.json, noise.json and infra.yaml:
    the inputs of `qsplit plan` and `qsplit pareto`.

    Example:

        qsplit import-prototype ../shared/reference/prototype --out runs/proto --granularity block
    """
    from qsplit.prototype import import_prototype

    chosen = _granularity(granularity)
    with console.status(f"importing {model} from {directory} …"):
        imported = import_prototype(directory, model, granularity=chosen, cpus=_cpus(cpus or []))
        written = imported.save(out)
    graph = imported.graph
    console.print(
        f"{model}: {len(graph.blocks)} blocks ({graph.granularity} granularity), "
        f"{len(graph.tensors)} tensors, {len(imported.noise.quantizable)} quantizable, "
        f"{len(imported.noise.terms)} noise terms"
    )
    for path in written:
        console.print(f"  wrote {path}")


def _granularity(value: str) -> Literal["node", "block"]:
    if value == "node":
        return "node"
    if value == "block":
        return "block"
    raise InputError(
        f"unknown granularity {value!r}", field="--granularity", fix="use node or block"
    )


def _cpus(pairs: list[str]) -> dict[str, float]:
    chosen = {}
    for pair in pairs:
        role, _, value = pair.partition("=")
        try:
            chosen[role] = float(value)
        except ValueError:
            raise InputError(
                f"expected ROLE=CPUS, got {pair!r}", field="--cpus", fix="e.g. --cpus Client=0.5"
            ) from None
    return chosen
