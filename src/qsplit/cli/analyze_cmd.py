"""``qsplit analyze``: the block table of a model, and its LayerGraph as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qsplit.cli._app import app, console
from qsplit.cli._format import human_bytes, human_count
from qsplit.model import LayerGraph, analyze, parse_input_shape


@app.command("analyze")
def analyze_command(
    model: Annotated[Path, typer.Argument(help="ONNX model file (opset ≥ 11).")],
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape",
            help="Concrete shape of an input with dynamic dimensions, NAME=1x3x640x640. "
            "Repeat for several inputs.",
        ),
    ] = None,
    granularity: Annotated[
        str,
        typer.Option(help="'node': one block per ONNX node; 'block': grouped by module/chain."),
    ] = "block",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the LayerGraph to this JSON file.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows (0 = all).")] = 0,
) -> None:
    """Analyse an ONNX model: blocks, MACs, weights and tensor sizes.

    Example: qsplit analyze model.onnx --input-shape images=1x3x640x640 --json graph.json
    """
    if granularity not in ("node", "block"):
        raise typer.BadParameter("must be 'node' or 'block'", param_hint="--granularity")
    shapes = dict(parse_input_shape(s) for s in input_shape or [])
    _, graph = analyze(str(model), shapes, granularity)  # type: ignore[arg-type]
    console.print(block_table(graph, limit))
    console.print(_summary(graph))
    if json_out is not None:
        graph.save(str(json_out))
        console.print(f"LayerGraph written to [bold]{json_out}[/]")


def block_table(graph: LayerGraph, limit: int = 0) -> Table:
    """One row per block: size, cost, and what it exchanges with the rest of the graph."""
    total_macs = graph.total_macs or 1
    table = Table(
        title=f"{Path(graph.model.path).name} — {len(graph.blocks)} blocks "
        f"({graph.granularity} granularity)"
    )
    for column, justify in [
        ("#", "right"),
        ("block", "left"),
        ("ONNX nodes", "right"),
        ("main ops", "left"),
        ("MACs", "right"),
        ("% MACs", "right"),
        ("weights", "right"),
        ("outputs", "right"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    rows = graph.blocks if limit <= 0 else graph.blocks[:limit]
    for i, block in enumerate(rows):
        ops = sorted(set(block.op_types), key=block.op_types.count, reverse=True)[:3]
        table.add_row(
            str(i),
            block.name,
            str(len(block.onnx_nodes)),
            ", ".join(ops),
            human_count(block.macs),
            f"{100 * block.macs / total_macs:.1f}",
            human_bytes(block.weight_bytes),
            human_bytes(block.output_bytes),
        )
    if limit and len(graph.blocks) > limit:
        table.caption = f"{len(graph.blocks) - limit} more blocks not shown (--limit 0 shows all)"
    return table


def _summary(graph: LayerGraph) -> str:
    ins = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))} {s.dtype}" for s in graph.model.inputs)
    outs = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))}" for s in graph.model.outputs)
    nodes = sum(len(b.onnx_nodes) for b in graph.blocks)
    return (
        f"[bold]{nodes}[/] ONNX nodes in [bold]{len(graph.blocks)}[/] blocks, "
        f"{human_count(graph.total_macs)} MACs, {human_bytes(graph.total_weight_bytes)} weights, "
        f"{len(graph.tensors)} tensors between blocks\n"
        f"inputs: {ins}\noutputs: {outs}\nsha256: {graph.model.sha256}"
    )
