"""``qsplit profile``: per-block fp32/int8 latency of a model on this machine, as one node."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qsplit.cli._app import app, console
from qsplit.infra import load_infra
from qsplit.model import LayerGraph, LoadedModel, analyze, parse_input_shape
from qsplit.profile import (
    CODEC_OPERATIONS,
    EMULATION_STATISTIC,
    CodecTimes,
    SessionSettings,
    Statistic,
    Summary,
    block_feeds,
    compression_table,
    emulated_duration_s,
    make_session,
    measure_host,
    padding_factor,
    profile_node,
    shipped_profile,
    time_run,
)


@app.command("profile")
def profile_command(
    model: Annotated[Path, typer.Argument(help="ONNX model file.")],
    node: Annotated[str, typer.Option(help="Name of the node this profile stands for.")],
    out: Annotated[Path, typer.Option(help="Compute profile JSON to write.")],
    infra: Annotated[
        Path | None,
        typer.Option(
            help="Infrastructure YAML: the node must exist; if it has a reference_time, this "
            "machine emulates it (times scaled by the node's reference time over this host's)."
        ),
    ] = None,
    granularity: Annotated[str, typer.Option(help="'block' or 'node'.")] = "block",
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help="NAME=1x3x640x640, repeatable.")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="ORT intra-op threads.")] = 1,
    provider: Annotated[str, typer.Option(help="ORT execution provider.")] = (
        "CPUExecutionProvider"
    ),
    repetitions: Annotated[int, typer.Option(min=1, help="Timed runs per block.")] = 20,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs per block first.")] = 3,
    no_int8: Annotated[bool, typer.Option("--no-int8", help="Profile fp32 only.")] = False,
    calib: Annotated[
        Path | None,
        typer.Option(help="Calibration images for int8 (default: the bundled sample images)."),
    ] = None,
    no_shipped: Annotated[
        bool,
        typer.Option("--no-shipped", help="Time this machine even if the model ships a profile."),
    ] = False,
    no_codec: Annotated[
        bool,
        typer.Option("--no-codec", help="Leave out the link codec times (fp16/int8/lz4/zstd)."),
    ] = False,
    compression: Annotated[
        Path | None,
        typer.Option(
            help="Also write the model's compression table here (each crossing tensor's "
            "compressed/raw size per link precision and codec, on the reference input), "
            "for `qsplit plan --compression`."
        ),
    ] = None,
    overhead: Annotated[
        bool,
        typer.Option(
            "--overhead",
            help="Also measure the requester's fixed costs with null requests to the agent of "
            "--node (the --infra's device, at its address) and store them in the profile.",
        ),
    ] = False,
) -> None:
    """Time every block alone (fp32 and int8) and write a compute profile for the planner.

    Example: qsplit profile yolo11n.onnx --node edge --infra infra.yaml --out profiles/edge.json
    """
    if granularity not in ("node", "block"):
        raise typer.BadParameter("must be 'node' or 'block'", param_hint="--granularity")
    nodes = None if infra is None else load_infra(infra)
    if overhead and (nodes is None or nodes.device != node or nodes.node(node).address is None):
        raise typer.BadParameter(
            "needs --infra whose device is --node and has the address of its running agent",
            param_hint="--overhead",
        )
    reference_s = None if nodes is None else nodes.node(node).reference_time_s
    shapes = dict(parse_input_shape(s) for s in input_shape or [])
    loaded, graph = analyze(str(model), shapes, granularity)  # type: ignore[arg-type]
    # An emulated node is summarised as the testbed's agents summarise it (one profiling path).
    statistic: Statistic = "median" if reference_s is None else EMULATION_STATISTIC
    factor, shipped = 1.0, None
    if reference_s is not None and not no_shipped:
        shipped = shipped_profile(graph, node, reference_s)
    if shipped is not None:
        console.print(f"emulating {node}: the model's shipped profile scaled to its reference time")
    elif nodes is not None and reference_s is not None:
        with console.status("timing this host's reference workload"):
            host = measure_host(statistic, threads=threads)
        factor = padding_factor(nodes, node, host)
        console.print(
            f"emulating {node}: reference time {reference_s * 1e3:.0f} ms / this host "
            f"{host.time_s * 1e3:.0f} ms → padding factor {factor:.2f}"
        )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("profiling", total=len(graph.blocks))
        profile = profile_node(
            loaded,
            graph,
            node=node,
            reference_time_s=reference_s,
            padding_factor=factor,
            statistic=statistic,
            provider=provider,
            threads=threads,
            warmup=warmup,
            repetitions=repetitions,
            int8=not no_int8,
            calibration=calib,
            progress=lambda done, _total, name: bar.update(task, completed=done, description=name),
            shipped=not no_shipped,
            codec=not no_codec,
        )
    if overhead and nodes is not None:
        from qsplit.runtime import measure_overhead  # zmq only when asked, as the other commands

        with console.status("null requests to the device's agent"):
            profile = replace(profile, overhead=measure_overhead(nodes))
        fixed = profile.overhead
        console.print(
            f"fixed costs: {fixed.request_s * 1e3:.2f} ms per request, "
            f"{fixed.message_s * 1e3:.2f} ms per message"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    profile.save(str(out))

    table = Table(title=f"{node}: {len(profile.blocks)} blocks (padding factor {factor:.2f})")
    for column in ("block", "fp32 ms", "int8 ms", "speed-up"):
        table.add_column(column, justify="left" if column == "block" else "right")
    for name, t in profile.blocks.items():
        int8 = "–" if t.int8_s is None else f"{t.int8_s * 1e3:.2f}"
        speedup = "–" if t.int8_s is None else f"{t.fp32_s / t.int8_s:.2f}×"
        table.add_row(name, f"{t.fp32_s * 1e3:.2f}", int8, speedup)
    console.print(table)
    total = sum(t.fp32_s for t in profile.blocks.values())
    if shipped is None:
        whole = _whole_model_s(loaded, graph, provider, threads, warmup, repetitions, statistic)
        console.print(
            f"Σ blocks fp32 {total * 1e3:.1f} ms; whole model measured "
            f"{emulated_duration_s(whole, factor) * 1e3:.1f} ms"
        )
    else:
        console.print(f"Σ blocks fp32 {total * 1e3:.1f} ms (shipped, not measured)")
    if profile.codec is not None:
        console.print(_codec_table(profile.codec))
    console.print(f"written to [bold]{out}[/]")
    if compression is not None:
        with console.status("measuring compression on the reference input"):
            table = compression_table(loaded, graph, calib)
        table.save(compression)
        console.print(
            f"compression table ({len(table.ratios)} ratios) written to [bold]{compression}[/]"
        )


def _codec_table(codec: CodecTimes) -> Table:
    """Each codec operation's throughput at 4 MiB, the size links make it matter at."""
    size = 4 * 2**20
    table = Table(title="link codecs at 4 MiB (MB/s of input)")
    for column in ("operation", "encode", "decode"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for op in CODEC_OPERATIONS:
        if codec.supports(op):
            rates = (size / c.seconds(size) / 1e6 for c in (codec.encode[op], codec.decode[op]))
            table.add_row(op, *(f"{r:,.0f}" for r in rates))
    return table


def _whole_model_s(
    loaded: LoadedModel,
    graph: LayerGraph,
    provider: str,
    threads: int,
    warmup: int,
    reps: int,
    statistic: Statistic,
) -> float:
    """The whole model's latency with the profile's settings and statistic, to compare with
    the sum of its blocks."""
    session = make_session(loaded.proto, SessionSettings(provider=provider, threads=threads))
    values = block_feeds(loaded, graph)
    feeds = {spec.name: values[spec.name] for spec in graph.model.inputs}
    for _ in range(warmup):
        session.run(None, feeds)
    return Summary.of([time_run(session, feeds) for _ in range(reps)]).value(statistic)
