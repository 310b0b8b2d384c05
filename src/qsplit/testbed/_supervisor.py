"""The testbed's supervisor process: link emulators, one agent per node, until told to stop.

``qsplit testbed up`` starts this module as a detached process (its own session and process
group, so ``down`` can signal everything it started at once). It

1. starts a :class:`LinkProxy` for every directed link ``a → b`` in front of ``b``'s agent, and a
   second one in front of a probe server, both on the link's shared :class:`LinkClock`;
2. starts ``qsplit agent`` for every node on a free loopback port with its padding factor (the
   node's ``reference_time`` over the host's, measured by ``up`` and passed as ``--host``) and
   ``--route b=<proxy a→b>`` for every link leaving it, so agent-to-agent pushes cross the
   emulated links, and without shared memory, so that no tensor bypasses them;
3. writes the state file (``testbed.json``) and a requester's view of the infrastructure
   (``infra.yaml``: every node reached through the device's link to it, if any), then waits for
   SIGTERM;
4. on SIGTERM, or once the process given as ``--owner-pid`` is gone, stops the agents, closes
   the proxies and removes the state file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import yaml

from qsplit.infra import Infra, load_infra
from qsplit.profile import EMULATION_STATISTIC, HostReference, Statistic, node_factors
from qsplit.testbed._linkemu import LinkClock, LinkProxy, LinkShape
from qsplit.testbed._probe import ProbeServer
from qsplit.testbed._state import (
    AgentState,
    LinkState,
    TestbedState,
    process_alive,
    requester_infra_path,
    state_path,
)

AGENT_START_TIMEOUT_S = 60.0
AGENT_STATISTIC: Statistic = EMULATION_STATISTIC
"""Emulated nodes are defined by this machine's undisturbed speed (``qsplit profile --infra``
uses the same statistic for an emulated node)."""
AGENT_STOP_TIMEOUT_S = 5.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="qsplit testbed supervisor (internal)")
    parser.add_argument("--infra", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", required=True, help="HostReference as JSON")
    parser.add_argument("--owner-pid", type=int, help="stop once this process is gone")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    host = HostReference.from_dict(json.loads(args.host))
    supervise(args.infra, args.state_dir, host, stop, owner_pid=args.owner_pid)


def supervise(
    infra_path: Path,
    state_dir: Path,
    host: HostReference,
    stop: threading.Event,
    *,
    owner_pid: int | None = None,
) -> None:
    """Run the testbed described by ``infra_path`` on a host measured as ``host`` until
    ``stop`` is set, or until the process ``owner_pid`` (if given) is gone."""
    infra = load_infra(infra_path)
    factors = node_factors(infra, host)
    state_dir.mkdir(parents=True, exist_ok=True)
    addresses: dict[str, str] = {}
    probe = ProbeServer()
    clocks = {
        (lk.source, lk.target): LinkClock(LinkShape(lk.latency_s, lk.bandwidth_bytes_per_s))
        for lk in infra.links
    }
    proxies: dict[tuple[str, str], tuple[LinkProxy, LinkProxy]] = {}
    agents: dict[str, subprocess.Popen[bytes]] = {}
    logs: list[IO[bytes]] = []
    try:
        for (source, target), clock in clocks.items():
            backward = clocks.get((target, source))
            data = LinkProxy(lambda t=target: _host_port(addresses[t]), clock, backward)
            probes = LinkProxy(lambda: (probe.host, probe.port), clock, backward)
            proxies[(source, target)] = (data, probes)
        for node in infra.nodes:
            log = (state_dir / f"{node.name}.log").open("wb")
            logs.append(log)
            agents[node.name] = _spawn_agent(node.name, factors[node.name], proxies, log)
        for node in infra.nodes:
            addresses[node.name] = _wait_for_address(node.name, agents[node.name], state_dir)
        _write_requester_infra(infra, infra_path, addresses, proxies, state_dir)
        TestbedState(
            infra=str(infra_path.resolve()),
            supervisor_pid=os.getpid(),
            requester_infra=str(requester_infra_path(state_dir)),
            agents={
                name: AgentState(
                    pid=process.pid,
                    address=addresses[name],
                    reference_time_s=float(infra.node(name).reference_time_s or 0.0),
                    padding_factor=factors[name],
                    log=str(state_dir / f"{name}.log"),
                )
                for name, process in agents.items()
            },
            links=tuple(
                LinkState(
                    source=source,
                    target=target,
                    latency_s=clocks[(source, target)].shape.latency_s,
                    bandwidth_bytes_per_s=clocks[(source, target)].shape.bandwidth_bytes_per_s,
                    proxy=data.address,
                    probe=probes.address,
                )
                for (source, target), (data, probes) in proxies.items()
            ),
            host=host,
        ).save(state_path(state_dir))
        while not stop.wait(0.5):
            if owner_pid is not None and not process_alive(owner_pid):
                break
    finally:
        _stop_agents(agents)
        for pair in proxies.values():
            for proxy in pair:
                proxy.close()
        probe.close()
        for log in logs:
            log.close()
        state_path(state_dir).unlink(missing_ok=True)


def _spawn_agent(
    name: str,
    padding_factor: float,
    proxies: dict[tuple[str, str], tuple[LinkProxy, LinkProxy]],
    log: IO[bytes],
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "qsplit", "agent", "--name", name]
    command += ["--listen", "127.0.0.1:0", "--padding-factor", repr(padding_factor)]
    command += ["--emulated", "--statistic", AGENT_STATISTIC, "--no-shared-memory"]
    for (source, target), (data, _) in proxies.items():
        if source == name:
            command += ["--route", f"{target}={data.address}"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _wait_for_address(name: str, process: subprocess.Popen[bytes], state_dir: Path) -> str:
    """The address the agent prints once it listens (read from its log file)."""
    log = state_dir / f"{name}.log"
    prefix = f"agent {name} listening on "
    deadline = time.monotonic() + AGENT_START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"agent {name} did not start (exit code {process.poll()}):\n{tail}")


def _stop_agents(agents: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in agents.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + AGENT_STOP_TIMEOUT_S
    for process in agents.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _write_requester_infra(
    infra: Infra,
    infra_path: Path,
    addresses: dict[str, str],
    proxies: dict[tuple[str, str], tuple[LinkProxy, LinkProxy]],
    state_dir: Path,
) -> None:
    """The infrastructure file as the requesting device sees the testbed: its own agent
    directly, every other node through the emulator of the device's link to it. A node without
    one keeps its direct address, which carries only control messages: the runtime relays its
    data through the nodes on its route, over their emulated links. The testbed's agents run
    on loopback without CURVE, so the nodes' public keys are left out (a session would
    otherwise insist on CURVE)."""
    document = yaml.safe_load(infra_path.read_text())
    for node in document["nodes"]:
        name = node["name"]
        pair = proxies.get((infra.device, name))
        node["address"] = pair[0].address if pair is not None else addresses[name]
        node.pop("curve_public_key", None)
    header = (
        f"# Written by `qsplit testbed up` from {infra_path.resolve()}.\n"
        "# Addresses are the device's view of the running testbed; valid until `down`.\n"
        "# Its agents run on loopback in clear: no curve_public_key.\n"
    )
    requester_infra_path(state_dir).write_text(header + yaml.safe_dump(document, sort_keys=False))


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


if __name__ == "__main__":
    main()
