"""``qsplit split``: write the components of an assignment as standalone ONNX models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import onnx
import typer
from rich.table import Table

from qsplit.cli._app import app, console
from qsplit.cli._format import human_bytes
from qsplit.model import analyze, parse_input_shape
from qsplit.partition import ComponentExtractor, check_nodes, components, read_assignment


@app.command("split")
def split_command(
    model: Annotated[Path, typer.Argument(help="ONNX model file.")],
    assignment: Annotated[
        Path,
        typer.Option(help="YAML/JSON mapping block → node, or a plan.json with an assignment."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the component .onnx files.")],
    infra: Annotated[
        Path | None, typer.Option(help="Infrastructure YAML: node names are checked against it.")
    ] = None,
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help="NAME=1x3x640x640, repeatable.")
    ] = None,
    granularity: Annotated[str, typer.Option(help="Granularity the assignment uses.")] = "block",
) -> None:
    """Split a model by a block→node assignment into standalone ONNX components.

    Example: qsplit split yolo11n.onnx --assignment plan.json --infra infra.yaml --out parts/
    """
    if granularity not in ("node", "block"):
        raise typer.BadParameter("must be 'node' or 'block'", param_hint="--granularity")
    mapping = read_assignment(assignment)
    if infra is not None:
        from qsplit.infra import load_infra

        check_nodes(mapping, load_infra(infra).node_names, source=assignment)
    shapes = dict(parse_input_shape(s) for s in input_shape or [])
    loaded, graph = analyze(str(model), shapes, granularity)  # type: ignore[arg-type]
    parts = components(graph, mapping)
    extractor = ComponentExtractor(loaded, graph)
    out.mkdir(parents=True, exist_ok=True)
    table = Table(title=f"{len(parts)} components")
    for column in ("component", "node", "blocks", "inputs", "outputs", "file size"):
        table.add_column(column)
    index = []
    for part in parts:
        path = out / f"{part.name}.onnx"
        onnx.save(extractor.extract(part), path)
        index.append(
            {
                "name": part.name,
                "node": part.node,
                "file": path.name,
                "blocks": list(part.blocks),
                "inputs": list(part.inputs),
                "outputs": list(part.outputs),
            }
        )
        table.add_row(
            part.name,
            part.node,
            str(len(part.blocks)),
            str(len(part.inputs)),
            str(len(part.outputs)),
            human_bytes(path.stat().st_size),
        )
    (out / "components.json").write_text(
        json.dumps(
            {
                "kind": "components",
                "schema_version": 1,
                "model": {"sha256": graph.model.sha256},
                "components": index,
            },
            indent=1,
        )
    )
    console.print(table)
    console.print(f"written to [bold]{out}[/] (index: components.json)")
