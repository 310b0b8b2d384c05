"""``qsplit agent``, ``qsplit deploy`` and ``qsplit run``: the distributed runtime's commands."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from qsplit.cli._adapt_options import (
    AdaptOpt,
    CheckIntervalOpt,
    GraphOpt,
    HysteresisOpt,
    MarginOpt,
    MinIntervalOpt,
    NoiseOpt,
    adapt_meta,
    adaptive_results,
    adaptive_session,
)
from qsplit.cli._app import app, console, err_console
from qsplit.cli._format import human_bytes
from qsplit.cli._model_options import PreprocessOption
from qsplit.errors import InputError

if TYPE_CHECKING:
    from qsplit.profile import ComputeProfile, Statistic
    from qsplit.runtime import ComponentHost, CurveKeys, Session
    from qsplit.serve import NodeServing, RaySession


class Backend(StrEnum):
    """What runs a plan's components."""

    agents = "agents"
    ray = "ray"


GATEWAY_CALLS = 64
"""Calls a gateway agent (``--backend ray``) has waiting on Serve at once."""


class AgentBackend(StrEnum):
    """What runs an agent's components."""

    local = "local"
    ray = "ray"


RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="With --backend ray: join this Ray cluster (HOST:PORT or ray://…), which must "
        "offer a resource named after each shared node; default: an embedded Ray.",
    ),
]
ReplicasOpt = Annotated[
    int,
    typer.Option(
        help="With --backend ray: replicas of each shared component (the autoscaling "
        "minimum with --max-replicas)."
    ),
]
MaxReplicasOpt = Annotated[
    int | None,
    typer.Option(
        "--max-replicas",
        help="With --backend ray: let Serve autoscale each shared component up to this many "
        "replicas.",
    ),
]
MaxBatchOpt = Annotated[
    int,
    typer.Option(
        "--max-batch",
        help="With --backend ray: concurrent requests a shared component runs as one batch.",
    ),
]

TOKEN_HELP = "Shared secret (default: $QSPLIT_TOKEN); required when listening off loopback."
PlanArg = Annotated[Path, typer.Argument(help="plan.json written by `qsplit plan`.")]
InfraOpt = Annotated[
    Path, typer.Option("--infra", help="Infrastructure YAML with agent addresses.")
]
ModelOpt = Annotated[Path, typer.Option("--model", help="The ONNX model the plan was made for.")]
TokenOpt = Annotated[str | None, typer.Option("--token", help=TOKEN_HELP)]
CurveKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--curve-key",
        help="This side's CURVE secret key file (`qsplit keys generate`); needed when the "
        "infra file gives nodes a curve_public_key.",
    ),
]
CalibOpt = Annotated[
    Path | None,
    typer.Option(
        "--calib",
        help="Images to calibrate the plan's quantized blocks on (default: bundled samples).",
    ),
]
ProfilesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--profiles",
        help="The compute profiles (files or a directory) the plan was made with: emulated "
        "nodes (the testbed's) then run each component in its profiled time. Repeatable.",
    ),
]


def _profiles(paths: list[Path] | None) -> dict[str, ComputeProfile] | None:
    """Node → compute profile of ``--profiles``, or ``None`` when none were given."""
    from qsplit.profile import load_compute_profiles

    if not paths:
        return None
    return {node: profile for node, (_, profile) in load_compute_profiles(paths).items()}


InputShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        help="NAME=1x3x640x640, repeatable: the shape of a dynamic input, for a plan that records "
        "none (plans made from an analysis with --input-shape record theirs).",
    ),
]


def _token(token: str | None) -> str | None:
    return token if token is not None else os.environ.get("QSPLIT_TOKEN")


def _positive(value: float, option: str, example: str) -> None:
    """Refuse a count, size or duration that is zero or negative, naming the option."""
    if value <= 0:
        raise InputError(f"{value:g} is not positive", field=option, fix=f"e.g. {option} {example}")


@app.command("agent")
def agent_command(
    name: Annotated[str, typer.Option("--name", help="Node name, as in the infra file.")],
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT (port 0: any free port).")],
    token: TokenOpt = None,
    padding_factor: Annotated[
        float,
        typer.Option(
            help="Pad each component run to this × its time here (the testbed sets it from the "
            "node's reference_time and this host's; not a way to describe a node)."
        ),
    ] = 1.0,
    emulated: Annotated[
        bool,
        typer.Option(
            "--emulated",
            help="Play a node of another speed (the testbed sets it): run each component in "
            "its deployed compute_s, or padding factor × its time, even at factor 1.",
        ),
    ] = False,
    threads: Annotated[int, typer.Option(help="ORT threads per component.")] = 1,
    statistic: Annotated[
        str,
        typer.Option(
            help="Timing statistic of profiles and of the padding reference: median, or "
            "min (undisturbed time, used by the testbed)."
        ),
    ] = "median",
    max_message_mb: Annotated[
        float, typer.Option(help="Largest message accepted, in MiB (bigger ones are rejected).")
    ] = 256.0,
    route: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            help="NODE=HOST:PORT: reach NODE at this address instead of the deployed one "
            "(e.g. through a link emulator). Repeatable.",
        ),
    ] = None,
    shared_memory: Annotated[
        bool,
        typer.Option(
            help="Exchange large tensors with agents and clients on this host through shared "
            "memory (off: every byte crosses the sockets, e.g. through link emulators).",
        ),
    ] = True,
    max_buffered_mb: Annotated[
        float, typer.Option(help="Tensor MiB all open requests may hold; more is refused.")
    ] = 1024.0,
    max_deadline: Annotated[
        float, typer.Option(help="Longest seconds a request may stay open here.")
    ] = 300.0,
    curve_key: Annotated[
        Path | None,
        typer.Option(
            "--curve-key",
            help="This node's CURVE secret key file: encrypt every connection, admit only the "
            "keys of the --infra file's nodes. Required off loopback.",
        ),
    ] = None,
    infra: Annotated[
        Path | None,
        typer.Option("--infra", help="Infrastructure YAML with the nodes' curve_public_key."),
    ] = None,
    allow_plaintext: Annotated[
        bool,
        typer.Option(
            "--allow-plaintext",
            help="Listen off loopback without CURVE (token and tensors in clear): only on a "
            "network trusted end to end.",
        ),
    ] = False,
    backend: Annotated[
        AgentBackend,
        typer.Option(
            help="local: run the components deployed here in this agent; ray: a gateway, "
            "whose components run as Ray Serve deployments placed by the resource named "
            "--name (devices without Ray reach Serve through it; docs/serve.md).",
        ),
    ] = AgentBackend.local,
    ray_address: RayAddressOpt = None,
    replicas: ReplicasOpt = 1,
    max_replicas: MaxReplicasOpt = None,
    max_batch: MaxBatchOpt = 1,
    fleet_app: Annotated[
        str | None,
        typer.Option(
            "--fleet-app",
            help="With --backend ray and --ray-address: run the components deployed here on "
            "this fleet node's Serve application (qsplit-fleet-<id>-<node>), sharing its "
            "batchers and replicas with the fleet's other devices, instead of deploying each.",
        ),
    ] = None,
) -> None:
    """Run this machine's agent until interrupted.

    Example: qsplit agent --name edge --listen 0.0.0.0:7102 --token $SECRET
    --curve-key edge.key --infra infra.yaml
    """
    from qsplit.runtime import AgentSettings, Limits, check_gateway, run_agent

    _positive(max_message_mb, "--max-message-mb", "256")
    _positive(threads, "--threads", "1")
    _positive(max_buffered_mb, "--max-buffered-mb", "1024")
    _positive(max_deadline, "--max-deadline", "300")
    settings = AgentSettings(
        name=name,
        listen=listen,
        token=_token(token),
        padding_factor=padding_factor,
        emulated=emulated,
        threads=threads,
        statistic=_statistic(statistic),
        limits=Limits(max_message_bytes=int(max_message_mb * 2**20)),
        routes=_routes(route or []),
        shared_memory=shared_memory,
        max_buffered_bytes=int(max_buffered_mb * 2**20),
        max_deadline_s=max_deadline,
        curve=_agent_curve(name, curve_key, infra),
        allow_plaintext=allow_plaintext,
        # A gateway's calls wait on Serve: let many requests wait at once, so they batch there.
        workers=GATEWAY_CALLS if backend is AgentBackend.ray else 1,
    )
    host: ComponentHost | None = None
    if backend is AgentBackend.ray:
        from qsplit.serve import FleetNodeHost, ServeHost

        check_gateway(settings)
        serving = _serving(replicas, max_replicas, max_batch)
        if fleet_app is not None:
            if ray_address is None:
                raise InputError(
                    "--fleet-app needs the Ray the fleet runs on",
                    field="--ray-address",
                    fix="pass --ray-address HOST:PORT of that cluster",
                )
            host = FleetNodeHost(name, fleet_app, address=ray_address)
        else:
            host = ServeHost(name, address=ray_address, serving=serving, threads=threads)
    elif ray_address is not None or fleet_app is not None:
        option = "--ray-address" if ray_address is not None else "--fleet-app"
        raise InputError(f"{option} needs --backend ray", field=option, fix="add --backend ray")
    run_agent(
        settings,
        on_ready=lambda a: print(f"agent {name} listening on {a}", flush=True),
        host=host,
    )


def _serving(replicas: int, max_replicas: int | None, max_batch: int) -> NodeServing:
    """The Serve settings of shared components from the CLI's options."""
    from qsplit.serve import NodeServing

    _positive(replicas, "--replicas", "2")
    _positive(max_batch, "--max-batch", "4")
    if max_replicas is not None and max_replicas < replicas:
        raise InputError(
            f"--max-replicas {max_replicas} is below --replicas {replicas}",
            field="--max-replicas",
            fix=f"give at least {replicas}, or drop it for a fixed count",
        )
    return NodeServing(replicas=replicas, max_replicas=max_replicas, max_batch_size=max_batch)


def _input_shapes(values: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    from qsplit.model import parse_input_shape

    return dict(parse_input_shape(v) for v in values or [])


def _agent_curve(name: str, curve_key: Path | None, infra: Path | None) -> CurveKeys | None:
    """The agent's CURVE keys: its pair, and the nodes it admits, from the infra file."""
    from qsplit.infra import load_infra
    from qsplit.runtime import curve_keys

    if curve_key is None and infra is None:
        return None
    if curve_key is None or infra is None:
        missing = "--infra" if infra is None else "--curve-key"
        raise InputError(
            "CURVE needs both the agent's key file and the infra file listing the public keys",
            field=missing,
            fix=f"pass --curve-key {name}.key --infra infra.yaml",
        )
    return curve_keys(load_infra(infra), curve_key, node=name)


def _statistic(value: str) -> Statistic:
    from qsplit.profile import STATISTICS

    if value not in STATISTICS:
        raise InputError(
            f"unknown statistic {value!r}", field="--statistic", fix=f"use one of {STATISTICS}"
        )
    return cast("Statistic", value)


def _routes(values: Sequence[str]) -> dict[str, str]:
    routes = {}
    for value in values:
        node, sep, address = value.partition("=")
        if not sep or not node or ":" not in address:
            raise InputError(
                f"--route {value!r} is not NODE=HOST:PORT",
                field="--route",
                fix="e.g. --route cloud=127.0.0.1:7203",
            )
        routes[node] = address
    return routes


@app.command("deploy")
def deploy_command(
    plan: PlanArg,
    infra: InfraOpt,
    model: ModelOpt,
    token: TokenOpt = None,
    calib: CalibOpt = None,
    input_shape: InputShapeOpt = None,
    preprocess: PreprocessOption = None,
    curve_key: CurveKeyOpt = None,
    profiles: ProfilesOpt = None,
) -> None:
    """Send a plan's components to their agents (each checked by sha256 there).

    Example: qsplit deploy plan.json --infra infra.yaml --model yolo11n.onnx
    """
    from qsplit.model import resolve_model_spec
    from qsplit.runtime import connect

    spec = resolve_model_spec(model, preprocess)
    with connect(
        plan,
        infra,
        model=model,
        token=_token(token),
        deploy=False,
        calibration=calib,
        input_shapes=_input_shapes(input_shape),
        preprocess=spec.preprocess,
        curve_key=curve_key,
        profiles=_profiles(profiles),
    ) as session:
        session.deploy()
        table = Table(title=f"deployment {session.deployment.id}")
        for column in ("component", "node", "address", "size", "sha256"):
            table.add_column(column)
        for spec in session.deployment.components:
            address = session.deployment.addresses[spec.node]
            size = human_bytes(len(spec.onnx))
            table.add_row(spec.name, spec.node, address, size, spec.sha256[:12])
        console.print(table)


@app.command("run")
def run_command(
    plan: PlanArg,
    infra: InfraOpt,
    model: ModelOpt,
    input: Annotated[
        Path | None, typer.Option("--input", help="An image, or a folder of images.")
    ] = None,
    random: Annotated[int | None, typer.Option("--random", help="N random inputs.")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 30.0,
    out: Annotated[Path, typer.Option(help="Results JSON.")] = Path("runtime-results.json"),
    save_outputs: Annotated[
        Path | None,
        typer.Option(
            "--save-outputs",
            help="Folder to write each request's outputs to, as NNNNNN.npz keyed by output name.",
        ),
    ] = None,
    token: TokenOpt = None,
    calib: CalibOpt = None,
    input_shape: InputShapeOpt = None,
    preprocess: PreprocessOption = None,
    curve_key: CurveKeyOpt = None,
    profiles: ProfilesOpt = None,
    adapt: AdaptOpt = False,
    graph: GraphOpt = None,
    noise: NoiseOpt = None,
    replan_margin: MarginOpt = 0.2,
    replan_hysteresis: HysteresisOpt = 0.1,
    replan_min_interval: MinIntervalOpt = 2.0,
    replan_check_interval: CheckIntervalOpt = 0.5,
    backend: Annotated[
        Backend,
        typer.Option(
            help="agents: the infra file's `qsplit agent`s; ray: the shared nodes' components as "
            "Ray Serve deployments, the device's here (docs/serve.md)."
        ),
    ] = Backend.agents,
    ray_address: RayAddressOpt = None,
    replicas: ReplicasOpt = 1,
    max_replicas: MaxReplicasOpt = None,
    max_batch: MaxBatchOpt = 1,
) -> None:
    """Run inferences through the deployed plan and report latency, energy (the cost model at
    measured times), compute and transfers, beside the plan's predictions. Exits with 1 when
    any request failed. With --backend ray, only latency and throughput are measured.

    Example: qsplit run plan.json --infra infra.yaml --model yolo11n.onnx --random 20
    """
    import numpy as np

    from qsplit.adapt import AdaptiveSession
    from qsplit.infra import load_infra
    from qsplit.model import resolve_model_spec
    from qsplit.plan import Plan
    from qsplit.runtime import connect, image_requests, random_requests, save_results, summarize

    if (input is None) == (random is None):
        raise InputError("pass exactly one of --input and --random", fix="e.g. --random 10")
    if random is not None:
        _positive(random, "--random", "10")
    _positive(timeout, "--timeout", "30")
    _positive(concurrency, "--concurrency", "4")
    if backend is Backend.agents and ray_address is not None:
        raise InputError("--ray-address needs --backend ray", fix="add --backend ray")
    serving = _serving(replicas, max_replicas, max_batch) if backend is Backend.ray else None
    if backend is Backend.ray and adapt:
        raise InputError(
            "--adapt re-plans agent deployments; Ray Serve places by resources",
            field="--adapt",
            fix="drop --adapt, or use --backend agents",
        )
    network, predicted = load_infra(infra), Plan.load(plan).predicted
    recipe = resolve_model_spec(model, preprocess).preprocess
    session: Session | RaySession | AdaptiveSession
    if backend is Backend.ray:
        from qsplit.serve import connect_ray

        session = connect_ray(
            plan,
            network,
            model=model,
            address=ray_address,
            serving=serving,
            calibration=calib,
            input_shapes=_input_shapes(input_shape),
            preprocess=recipe,
            timeout_s=timeout,
        )
    elif adapt:
        session = adaptive_session(
            plan,
            network,
            model,
            graph=graph,
            profiles=profiles,
            noise=noise,
            margin=replan_margin,
            hysteresis=replan_hysteresis,
            min_interval_s=replan_min_interval,
            check_interval_s=replan_check_interval,
            token=_token(token),
            timeout_s=timeout,
            calibration=calib,
            preprocess=recipe,
            curve_key=curve_key,
        )
    else:
        session = connect(
            plan,
            network,
            model=model,
            token=_token(token),
            timeout_s=timeout,
            calibration=calib,
            input_shapes=_input_shapes(input_shape),
            preprocess=recipe,
            curve_key=curve_key,
            profiles=_profiles(profiles),
        )
    with session:
        specs = session.deployment.input_specs
        feeds = (
            random_requests(specs, random)
            if input is None
            else image_requests(specs, input, recipe)
        )
        if save_outputs is not None:
            save_outputs.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        records, failed = [], []
        # Streamed: each result's outputs are written (or dropped) as it comes, so memory does
        # not grow with the number of requests.
        plan_ids: list[str] = []
        results = (
            adaptive_results(
                session,
                feeds,
                max_in_flight=concurrency,
                timeout_s=timeout,
                plan_ids=plan_ids,
            )
            if isinstance(session, AdaptiveSession)
            else session.stream(feeds, max_in_flight=concurrency, timeout_s=timeout)
        )
        for result in results:
            records.append(result.record)
            if result.error is not None:
                failed.append(result)
            elif save_outputs is not None:
                np.savez(save_outputs / f"{result.index:06d}.npz", **(result.outputs or {}))
        wall_s = time.perf_counter() - start
        meta = {
            "plan": str(plan),
            "deployment": session.deployment.id,
            "concurrency": concurrency,
            "backend": backend.value,
        }
        if backend is Backend.agents:
            meta["observed"] = session.observed().to_dict()
        if isinstance(session, AdaptiveSession):
            meta["adapt"] = adapt_meta(session, plan_ids)
        save_results(out, records, wall_s, meta, infra=network, predicted=predicted)
    for result in failed:
        console.print(f"request {result.index}: [red]failed[/red] {result.error}")
    summary = summarize(records, wall_s, infra=network, predicted=predicted)
    _render(summary, latency_only=backend is Backend.ray)
    console.print(f"results written to {out}")
    if failed:
        err_console.print(f"{len(failed)} of {len(records)} requests failed")
        raise typer.Exit(1)


VERSUS_ROWS = {
    "latency_s": ("latency", 1e3, "ms"),
    "energy_j": ("energy", 1.0, "J"),
    "device_energy_j": ("device energy", 1.0, "J"),
}
"""Summary key → label, scale and unit of the measured-against-predicted rows."""


def _render(summary: dict[str, Any], *, latency_only: bool = False) -> None:
    latency = summary["latency_s"]
    console.print(
        f"{summary['requests'] - summary['failed']}/{summary['requests']} requests ok in "
        f"{summary['wall_s']:.2f} s"
        + (f", median latency {latency['median'] * 1e3:.1f} ms" if latency else "")
        + (f", {summary['throughput_per_s']:.2f} requests/s" if latency and latency_only else "")
    )
    if latency_only:
        return
    versus = Table(title="per request (median) against the plan's prediction")
    for column in ("", "measured", "predicted"):
        versus.add_column(column)
    for key, (label, scale, unit) in VERSUS_ROWS.items():
        row = summary["vs_predicted"][key]
        measured = row["measured_median"]
        versus.add_row(
            label,
            "–" if measured is None else f"{measured * scale:.4g} {unit}",
            f"{row['predicted'] * scale:.4g} {unit}",
        )
    nodes = Table(title="compute per request (median)")
    nodes.add_column("node")
    nodes.add_column("compute")
    for node, seconds in summary["compute_s_per_node"].items():
        nodes.add_row(node, f"{seconds * 1e3:.1f} ms")
    links = Table(title="transfers per request (median)")
    for column in ("from", "to", "bytes", "time"):
        links.add_column(column)
    for link in summary["links"]:
        links.add_row(
            link["from"],
            link["to"],
            human_bytes(link["bytes_per_request"]),
            f"{link['transfer_s'] * 1e3:.2f} ms",
        )
    console.print(versus, nodes, links)
