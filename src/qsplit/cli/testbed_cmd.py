"""``qsplit testbed up|status|down``: the local emulated testbed as a long-running background.

``up`` returns once every agent listens and leaves the testbed running; ``down`` finds it again
through its state directory. :mod:`qsplit.testbed` does the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qsplit.cli._app import app, console
from qsplit.infra import load_infra
from qsplit.profile import REFERENCE_WORKLOAD, HostReference
from qsplit.testbed import DEFAULT_STATE_DIR, Testbed, calibrate

testbed_app = typer.Typer(
    help="Run a local testbed: one agent per node, links emulated in user space.",
    no_args_is_help=True,
)
app.add_typer(testbed_app, name="testbed")

StateDirOpt = Annotated[
    Path, typer.Option("--state-dir", help="Where the running testbed's state is kept.")
]


@testbed_app.command("up")
def up_command(
    infra: Annotated[Path, typer.Option("--infra", help="Infrastructure YAML.")],
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
) -> None:
    """Measure this host, then start one agent per node of INFRA (padded to the node's
    reference_time) and an emulator for every directed link. A node faster than this host is
    refused.

    Example: qsplit testbed up --infra src/qsplit/examples/three-tier.yaml
    """
    with console.status("measuring this host, starting agents and link emulators"):
        testbed = Testbed.up(infra, state_dir)
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


@testbed_app.command("calibrate")
def calibrate_command(
    infra: Annotated[Path, typer.Option("--infra", help="Infrastructure YAML.")],
) -> None:
    """Measure this host's time for the reference workload and show the padding factor each
    node of INFRA would get (what `up` does first, without starting anything).

    Example: qsplit testbed calibrate --infra src/qsplit/examples/three-tier.yaml
    """
    with console.status("timing the reference workload"):
        host, factors = calibrate(infra)
    table = Table(title=f"nodes of {infra}")
    for column in ("node", "reference time", "padding factor"):
        table.add_column(column)
    nodes = load_infra(infra)
    for name, factor in factors.items():
        reference_s = nodes.node(name).reference_time_s or 0.0
        table.add_row(name, f"{reference_s * 1e3:.0f} ms", f"{factor:.2f}×")
    console.print(_host_line(host), table)


@testbed_app.command("down")
def down_command(state_dir: StateDirOpt = DEFAULT_STATE_DIR) -> None:
    """Stop every agent and link emulator of the running testbed; nothing is left running."""
    testbed = Testbed.find(state_dir)
    if testbed is None:
        console.print(f"no testbed is running from {state_dir}")
        return
    testbed.down()
    console.print("testbed stopped")


def _render(testbed: Testbed) -> None:
    agents = Table(title=f"testbed from {testbed.state.infra}")
    for column in ("node", "pid", "address", "reference time", "padding factor", "state"):
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
    )
