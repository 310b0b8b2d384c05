"""``qsplit fleet serve`` and ``qsplit fleet connect``: a fleet plan served for real devices.

``serve`` runs the plan's shared nodes on Ray (their own speed: nothing emulated) until
interrupted and says how each class's devices reach them; ``connect`` is one device of a class
sending requests: through Ray (``runtime: ray``) or its light agent and the nodes' gateway
agents (``runtime: agent``).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from qsplit.assets import bundled_model_path
from qsplit.cli._app import console
from qsplit.cli.fleet_cmd import InfraArgument, ModelOption, fleet_app
from qsplit.cli.fleet_demo_cmd import NodeWorkers
from qsplit.errors import InputError

PlanArgument = Annotated[
    Path, typer.Argument(help="fleet-plan.json written by `qsplit fleet plan`.", exists=True)
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="The Ray cluster (HOST:PORT) offering a resource named after each shared node; "
        "default: an embedded Ray.",
    ),
]


@fleet_app.command("serve")
def serve_command(
    plan: PlanArgument,
    infra: InfraArgument,
    model: ModelOption = None,
    ray_address: RayAddressOption = None,
    node_workers: Annotated[
        NodeWorkers,
        typer.Option(
            help="Run each shared node's batches in its replica (in-process), on its planned "
            "number of Serve worker replicas (fixed), or on workers Serve autoscales (autoscale).",
        ),
    ] = NodeWorkers.in_process,
    min_workers: Annotated[
        int, typer.Option(help="With --node-workers autoscale: workers a node keeps.", min=1)
    ] = 1,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: when interrupted).", min=0),
    ] = None,
) -> None:
    """Serve a fleet plan's shared nodes on Ray for real devices, until interrupted.

    Example: qsplit fleet serve fleet-plan.json fleet.yaml --ray-address HEAD:6379
    """
    from qsplit.fleet import load_fleet, load_fleet_plan
    from qsplit.serve import NodeScaling, import_ray, serve_fleet

    deployment, fleet = load_fleet_plan(plan), load_fleet(infra)
    scaling = NodeScaling(node_workers.value, min_replicas=min_workers)
    model = model or bundled_model_path()
    with serve_fleet(deployment, fleet, model=model, address=ray_address, scaling=scaling) as nodes:
        ray, _ = import_ray()
        address = ray_address or ray.get_runtime_context().gcs_address
        table = Table(title=f"Fleet nodes served on Ray at {address}")
        for column in ("node", "Serve application", "components", "replicas", "batch"):
            table.add_column(column)
        shared = {s.node: s for s in deployment.shared}
        for node, application in nodes.applications.items():
            s = shared[node]
            table.add_row(
                node, application, str(len(s.components)), str(s.replicas), str(s.batch_size)
            )
        console.print(table)
        if ray_address is None:
            typer.echo(
                "Processes joining this embedded Ray on this machine need its token: "
                "export RAY_AUTH_MODE=token (it is in ~/.ray/auth_token)."
            )
        if any(c.runtime == "agent" for c in deployment.classes):
            typer.echo("Gateways for the devices without Ray, one per shared node:")
            for node, application in nodes.applications.items():
                typer.echo(
                    f"  qsplit agent --name {node} --listen HOST:PORT --backend ray "
                    f"--ray-address {address} --fleet-app {application}"
                )
        typer.echo("Devices, per class:")
        for c in deployment.classes:
            how = (
                f"--ray-address {address}"
                if c.runtime == "ray"
                else "--device-infra DEVICE.yaml  # its agent, the gateways' addresses"
            )
            typer.echo(f"  qsplit fleet connect {plan} {infra} --class {c.name} {how}")
        _wait(duration)


def _wait(duration: float | None) -> None:
    """Until ``duration`` has passed, or SIGINT/SIGTERM."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        stop.wait(duration)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@fleet_app.command("connect")
def connect_command(
    plan: PlanArgument,
    infra: InfraArgument,
    device_class: Annotated[str, typer.Option("--class", help="The device's class.")],
    model: ModelOption = None,
    ray_address: RayAddressOption = None,
    device_infra: Annotated[
        Path | None,
        typer.Option(
            help="For a class that keeps the light agent: an infrastructure YAML naming this "
            "device (its agent's address) and each shared node at its gateway's address.",
            exists=True,
        ),
    ] = None,
    random: Annotated[int, typer.Option(help="Random requests to send.", min=1)] = 10,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.", min=1)] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds one request may take.")] = 60.0,
) -> None:
    """Send requests as one device of a class of a served fleet; exits 1 if any failed.

    Example: qsplit fleet connect fleet-plan.json fleet.yaml --class cameras --ray-address HEAD:6379
    """
    from qsplit.fleet import load_fleet, load_fleet_plan
    from qsplit.infra import load_infra
    from qsplit.runtime import build_deployment, connect, random_requests
    from qsplit.serve import connect_fleet

    deployment, fleet = load_fleet_plan(plan), load_fleet(infra)
    model = model or bundled_model_path()
    entry = deployment.device_class(device_class, field="--class")
    if entry.runtime == "ray":
        session = connect_fleet(deployment, fleet, device_class, model=model, address=ray_address)
    else:
        if device_infra is None:
            raise InputError(
                f"class {device_class!r} keeps the light agent: its device reaches the shared "
                "nodes through their gateway agents",
                field="--device-infra",
                fix="pass an infrastructure YAML with this device's agent and each shared node "
                "at its gateway's address (`qsplit fleet serve` prints the gateway commands)",
            )
        network = load_infra(device_infra)
        assignment = {
            b: network.device if n == device_class else n for b, n in entry.assignment.items()
        }
        session = connect(build_deployment(model, assignment, network), network)
    with session:
        requests = random_requests(session.deployment.input_specs, random)
        latencies, failed = [], []
        for result in session.stream(requests, max_in_flight=concurrency, timeout_s=timeout):
            if result.error is None:
                latencies.append(result.record.latency_s)
            else:
                failed.append(str(result.error))
    table = Table(title=f"{device_class} ({entry.runtime}) on the served fleet")
    for column in ("requests", "failed", "p50 ms", "p95 ms"):
        table.add_column(column, justify="right")
    quantiles = np.quantile(latencies, [0.5, 0.95]) * 1e3 if latencies else [float("nan")] * 2
    table.add_row(str(random), str(len(failed)), *(f"{q:.1f}" for q in quantiles))
    console.print(table)
    for error in failed[:3]:
        console.print(f"[red]failed:[/] {error}")
    if failed:
        raise typer.Exit(1)
