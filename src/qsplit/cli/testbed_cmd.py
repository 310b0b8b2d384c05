"""``qsplit testbed up|status|set|play|down``: the local emulated testbed as a long-running
background.

``up`` returns once every agent listens and leaves the testbed running; ``status``, ``set``,
``play`` and ``down`` find it again through its state directory. :mod:`qsplit.testbed` does the
work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qsplit.cli._app import app, console
from qsplit.errors import InputError
from qsplit.infra import load_infra, parse_bandwidth, parse_duration
from qsplit.profile import HEADROOM, REFERENCE_WORKLOAD, HostReference, save_host_reference
from qsplit.testbed import (
    DEFAULT_STATE_DIR,
    PlayedEvent,
    Testbed,
    calibrate,
    load_host_file,
    load_schedule,
    play,
)

testbed_app = typer.Typer(
    help="Run a local testbed: one agent per node, links emulated in user space.",
    no_args_is_help=True,
)
app.add_typer(testbed_app, name="testbed")
set_app = typer.Typer(
    help="Change the running testbed: a link's rate and delay, a node's speed.",
    no_args_is_help=True,
)
testbed_app.add_typer(set_app, name="set")

StateDirOpt = Annotated[
    Path, typer.Option("--state-dir", help="Where the running testbed's state is kept.")
]


@testbed_app.command("up")
def up_command(
    infra: Annotated[Path, typer.Option("--infra", help="Infrastructure YAML.")],
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
    host_reference: Annotated[
        Path | None,
        typer.Option(
            "--host-reference",
            help="This host's reference time, saved by `qsplit testbed calibrate --out FILE`: "
            "used instead of measuring the host again (10-25 s).",
        ),
    ] = None,
) -> None:
    """Measure this host (or read --host-reference), then start one agent per node of INFRA
    (padded to the node's reference_time) and an emulator for every directed link. A node
    faster than this host is refused.

    Example: qsplit testbed up --infra src/qsplit/examples/three-tier.yaml
    """
    host = None
    if host_reference is not None:
        host, measured_at = load_host_file(host_reference)
        console.print(f"host reference from {host_reference}, measured {measured_at}")
    with console.status("measuring this host, starting agents and link emulators"):
        testbed = Testbed.up(infra, state_dir, host=host)
    _render(testbed)
    console.print(
        f"Use [bold]--infra {testbed.infra_path}[/bold] with qsplit deploy/run; "
        f"stop with: qsplit testbed down --state-dir {state_dir}"
    )


@testbed_app.command("status")
def status_command(state_dir: StateDirOpt = DEFAULT_STATE_DIR) -> None:
    """Show the running testbed's agents (ok, stuck, deaf, alive but not listening, dead) and
    emulated links."""
    _render(Testbed.attach(state_dir))


@set_app.command("link")
def set_link_command(
    source: Annotated[str, typer.Argument(help="The node the link leaves.")],
    target: Annotated[str, typer.Argument(help="The node it reaches.")],
    rate: Annotated[
        str | None, typer.Option("--rate", help="New bandwidth, e.g. 2MB/s or 16Mbit/s.")
    ] = None,
    delay: Annotated[
        str | None, typer.Option("--delay", help="New one-way latency, e.g. 20ms.")
    ] = None,
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
) -> None:
    """Give the directed link SOURCE → TARGET a new rate and/or delay; what is sent over it
    from now on is carried at the new shape.

    Example: qsplit testbed set link device edge --rate 2MB/s --delay 20ms
    """
    link = Testbed.attach(state_dir).set_link(
        source,
        target,
        bandwidth_bytes_per_s=_unit(parse_bandwidth, rate, "--rate", "2MB/s"),
        latency_s=_unit(parse_duration, delay, "--delay", "20ms"),
    )
    console.print(
        f"link {source} → {target}: {link.latency_s * 1e3:g} ms, "
        f"{link.bandwidth_bytes_per_s / 1e6:g} MB/s"
    )


@set_app.command("node")
def set_node_command(
    node: Annotated[str, typer.Argument(help="The node to slow down (or speed up again).")],
    speed: Annotated[
        float,
        typer.Option("--speed", help="Times slower than the node's profile (1: as profiled)."),
    ],
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
) -> None:
    """Run NODE's components SPEED times slower than its profile from now on, as a node that
    got busy; 1 restores it.

    Example: qsplit testbed set node edge --speed 2
    """
    Testbed.attach(state_dir).set_node_speed(node, speed)
    console.print(f"node {node}: {speed:g}× its profiled time")


@testbed_app.command("play")
def play_command(
    schedule: Annotated[Path, typer.Argument(help="Schedule YAML (docs/testbed.md).")],
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
) -> None:
    """Play a timed schedule of link, speed, kill and restart events on the running testbed,
    printing each as it is applied; returns after the last.

    Example: qsplit testbed play src/qsplit/examples/uplink-drop.yaml
    """
    loaded = load_schedule(schedule)
    testbed = Testbed.attach(state_dir)
    start = time.time()

    def show(played: PlayedEvent) -> None:
        at = played.applied_at - start
        console.print(f"{at:7.2f} s  {played.event.describe()}")

    play(testbed, loaded, start=start, on_event=show)


@testbed_app.command("calibrate")
def calibrate_command(
    infra: Annotated[Path, typer.Option("--infra", help="Infrastructure YAML.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also save the host's measurement here, for `qsplit testbed up "
            "--host-reference` (written only if every node of INFRA can be emulated).",
        ),
    ] = None,
) -> None:
    """Measure this host's time for the reference workload and show the padding factor each
    node of INFRA would get (what `up` does first, without starting anything).

    Example: qsplit testbed calibrate --infra src/qsplit/examples/three-tier.yaml
    """
    with console.status("timing the reference workload"):
        host, factors = calibrate(infra)
    if out is not None:
        save_host_reference(host, out)
    table = Table(title=f"nodes of {infra}")
    for column in ("node", "reference time", "padding factor"):
        table.add_column(column)
    nodes = load_infra(infra)
    for name, factor in factors.items():
        reference_s = nodes.node(name).reference_time_s or 0.0
        table.add_row(name, f"{reference_s * 1e3:.0f} ms", f"{factor:.2f}×")
    console.print(_host_line(host), table)
    if out is not None:
        console.print(f"host reference written to {out} (qsplit testbed up --host-reference)")


@testbed_app.command("down")
def down_command(state_dir: StateDirOpt = DEFAULT_STATE_DIR) -> None:
    """Stop every agent and link emulator of the running testbed; nothing is left running."""
    testbed = Testbed.find(state_dir)
    if testbed is None:
        console.print(f"no testbed is running from {state_dir}")
        return
    testbed.down()
    console.print("testbed stopped")


def _unit(
    parse: Callable[[object], float], value: str | None, option: str, example: str
) -> float | None:
    """``value`` of ``option`` read as the infrastructure file reads units (``None`` stays)."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise InputError(str(exc), field=option, fix=f"write e.g. {option} {example}") from None


def _render(testbed: Testbed) -> None:
    agents = Table(title=f"testbed from {testbed.state.infra}")
    columns = ("node", "pid", "address", "reference time", "padding factor", "speed", "state")
    for column in columns:
        agents.add_column(column)
    for agent in testbed.status():
        state = agent.state
        colour = "green" if state == "ok" else "red"
        agents.add_row(
            agent.name,
            str(agent.pid),
            agent.address,
            f"{agent.reference_time_s * 1e3:.0f} ms",
            f"{agent.padding_factor:.2f}×",
            f"{agent.speed_factor:g}× slower" if agent.speed_factor != 1 else "as profiled",
            f"[{colour}]{state}[/{colour}]",
        )
    links = Table(title="emulated links")
    for column in ("from", "to", "latency", "bandwidth", "entrance"):
        links.add_column(column)
    for link in testbed.state.links:
        links.add_row(
            link.source,
            link.target,
            f"{link.latency_s * 1e3:g} ms",
            f"{link.bandwidth_bytes_per_s / 1e6:g} MB/s",
            link.proxy,
        )
    console.print(_host_line(testbed.state.host), agents, links)


def _host_line(host: HostReference) -> str:
    """This host's measurement, and how a node's padding factor follows from it."""
    return (
        f"host: {host.time_s * 1e3:.1f} ms for the reference workload ({REFERENCE_WORKLOAD}; "
        f"{host.describe()}); "
        "padding factor = node reference time / host"
        + (
            ""
            if host.whole_s is None
            else f"; whole runs {host.whole_s * 1e3:.1f} ms ({host.describe_whole()}), "
            f"which every node's reference time must exceed by {HEADROOM:.0%}"
        )
    )
