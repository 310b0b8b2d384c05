"""Real agent processes on loopback for the runtime tests, always cleaned up."""

from __future__ import annotations

import itertools
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qsplit.infra import Infra, Link, Node

START_TIMEOUT_S = 60.0
"""Generous: agents import ORT and numpy, and a loaded 2-core machine makes that slow."""


@dataclass
class AgentProcess:
    name: str
    address: str
    process: subprocess.Popen[str]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def _read_address(process: subprocess.Popen[str], name: str) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if selector.select(timeout=0.2):
            line = process.stdout.readline()
            if line.startswith(f"agent {name} listening on "):
                return line.rsplit(" ", 1)[1].strip()
            if not line:
                break
    raise RuntimeError(f"agent {name} did not start (exit code {process.poll()})")


def spawn(
    name: str, listen: str = "127.0.0.1:0", *args: str, cwd: Path | None = None
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "qsplit", "agent", "--name", name, "--listen", listen]
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, text=True, cwd=cwd)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def running_agents(
    *names: str,
    args: tuple[str, ...] = (),
    cwd: Path | None = None,
    own_args: Callable[[str], tuple[str, ...]] = lambda name: (),
) -> Iterator[dict[str, AgentProcess]]:
    """Start agents (concurrently, in ``cwd`` if given; each with ``args`` and its
    ``own_args(name)``) and stop every one of them on the way out."""
    processes = {n: spawn(n, "127.0.0.1:0", *args, *own_args(n), cwd=cwd) for n in names}
    try:
        yield {n: AgentProcess(n, _read_address(p, n), p) for n, p in processes.items()}
    finally:
        for process in processes.values():
            stop(process)


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid``, in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def restart(agent: AgentProcess) -> AgentProcess:
    """Start a new agent at a killed agent's address; the caller must stop it."""
    process = spawn(agent.name, agent.address)
    try:
        return AgentProcess(agent.name, _read_address(process, agent.name), process)
    except BaseException:
        stop(process)
        raise


def infra_for(
    agents: dict[str, AgentProcess],
    device: str = "device",
    links: Iterable[tuple[str, str]] | None = None,
) -> Infra:
    """An infra whose nodes are the running agents, linked as ``links`` say (both directions of
    each pair; default: every pair, so no data is relayed). The runtime only uses the links'
    topology, to route; their numbers are nominal."""
    nodes = tuple(
        Node(name, "edge", 1.0, 1.0, 2**30, address=agent.address) for name, agent in agents.items()
    )
    if device not in agents:
        nodes = (Node(device, "device", 1.0, 1.0, 2**30), *nodes)
    names = [n.name for n in nodes]
    pairs = itertools.combinations(names, 2) if links is None else links
    both = [(a, b) for pair in pairs for a, b in (pair, pair[::-1])]
    return Infra(device=device, nodes=nodes, links=tuple(Link(a, b, 1e8, 0.0) for a, b in both))
