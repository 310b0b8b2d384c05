"""The testbed's supervisor process: link emulators, one agent per node, until told to stop.

``qsplit testbed up`` starts this module as a detached process (its own session and process
group, so ``down`` can signal everything it started at once). It

1. starts a :class:`LinkProxy` for every directed link ``a → b`` in front of ``b``'s agent, and a
   second one in front of a probe server, both on the link's shared :class:`LinkClock`;
2. starts ``qsplit agent`` for every node on a free loopback port with its padding factor (the
   node's ``reference_time`` over the host's, measured by ``up`` and passed as ``--host``) and
   ``--route b=<proxy a→b>`` for every link leaving it, so agent-to-agent pushes cross the
   emulated links, and without shared memory, so that no tensor bypasses them;
3. writes the state file (``testbed.json``, with the control channel's address and secret)
   and a requester's view of the infrastructure (``infra.yaml``: every node reached through the
   device's link to it, if any), then waits for SIGTERM;
4. meanwhile answers its control channel (:mod:`qsplit.testbed._control`): a link's latency
   and bandwidth, a node's slowdown (relayed to its agent), a node's agent killed or restarted
   on its old port; each change is written to the state file;
5. on SIGTERM, or once the process given as ``--owner-pid`` is gone, stops the agents, closes
   the proxies and removes the state file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import yaml

from qsplit.errors import InputError, TransportError
from qsplit.infra import Infra, load_infra
from qsplit.profile import EMULATION_STATISTIC, HostReference, Statistic, node_factors
from qsplit.runtime import MAX_SLOWDOWN, slow_down
from qsplit.testbed._control import ControlServer
from qsplit.testbed._linkemu import LinkClock, LinkProxy, LinkShape
from qsplit.testbed._probe import ProbeServer
from qsplit.testbed._processes import stop_processes, wait_for_address
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
    running = _Running(infra_path, state_dir, host)
    try:
        running.start()
        while not stop.wait(0.5):
            if owner_pid is not None and not process_alive(owner_pid):
                break
    finally:
        running.close()


class _Running:
    """The supervisor's testbed: its emulators, agents and control channel, and the changes
    the control channel makes to them (each op checks its request, applies it and rewrites the
    state file; a request it refuses raises :class:`InputError`)."""

    def __init__(self, infra_path: Path, state_dir: Path, host: HostReference) -> None:
        self.infra_path, self.state_dir, self.host = infra_path, state_dir, host
        self.infra = load_infra(infra_path)
        self.factors = node_factors(self.infra, host)
        self.addresses: dict[str, str] = {}
        self.speeds = {node.name: 1.0 for node in self.infra.nodes}
        self.killed: set[str] = set()
        self.probe = ProbeServer()
        self.clocks = {
            (lk.source, lk.target): LinkClock(LinkShape(lk.latency_s, lk.bandwidth_bytes_per_s))
            for lk in self.infra.links
        }
        self.proxies: dict[tuple[str, str], tuple[LinkProxy, LinkProxy]] = {}
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[bytes]] = []
        self.lock = threading.Lock()
        self.token = secrets.token_urlsafe(32)
        self.control = ControlServer(
            {
                "set_link": self.set_link,
                "set_node_speed": self.set_node_speed,
                "kill_node": self.kill_node,
                "restart_node": self.restart_node,
            },
            token=self.token,
        )

    def start(self) -> None:
        state_dir = self.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        for (source, target), clock in self.clocks.items():
            backward = self.clocks.get((target, source))
            data = LinkProxy(lambda t=target: _host_port(self.addresses[t]), clock, backward)
            probes = LinkProxy(lambda: (self.probe.host, self.probe.port), clock, backward)
            self.proxies[(source, target)] = (data, probes)
        starts = {n.name: self._start_agent(n.name, "127.0.0.1:0") for n in self.infra.nodes}
        for name, offset in starts.items():
            self.addresses[name] = self._wait(name, offset)
        _write_requester_infra(self.infra, self.infra_path, self.addresses, self.proxies, state_dir)
        self._save()

    def close(self) -> None:
        self.control.close()
        stop_processes(self.agents.values(), timeout_s=AGENT_STOP_TIMEOUT_S)
        for pair in self.proxies.values():
            for proxy in pair:
                proxy.close()
        self.probe.close()
        for log in self.logs:
            log.close()
        state_path(self.state_dir).unlink(missing_ok=True)

    # -- control ops -----------------------------------------------------------------------

    def set_link(self, request: Mapping[str, Any]) -> dict[str, Any]:
        source, target = _text(request, "source"), _text(request, "target")
        clock = self.clocks.get((source, target))
        if clock is None:
            links = ", ".join(f"{a}->{b}" for a, b in self.clocks)
            raise InputError(
                f"the testbed has no link {source}->{target}",
                field="link",
                fix=f"name one of its links: {links}",
            )
        bandwidth = _number(request, "bandwidth_bytes_per_s", above=0.0)
        latency = _number(request, "latency_s", at_least=0.0)
        if bandwidth is None and latency is None:
            raise InputError(
                f"nothing to change on link {source}->{target}",
                field="bandwidth_bytes_per_s",
                fix="give a new bandwidth (rate), latency (delay) or both",
            )
        with self.lock:
            shape = clock.shape
            clock.reshape(
                LinkShape(
                    shape.latency_s if latency is None else latency,
                    shape.bandwidth_bytes_per_s if bandwidth is None else bandwidth,
                )
            )
            self._save()
        return {"link": [source, target], **vars(clock.shape)}

    def set_node_speed(self, request: Mapping[str, Any]) -> dict[str, Any]:
        node = self._node(request)
        factor = _number(request, "factor", at_least=1.0, at_most=MAX_SLOWDOWN)
        if factor is None:
            raise InputError("no speed factor given", field="factor", fix="give a factor ≥ 1")
        with self.lock:
            if node not in self.killed:
                self._slow_down(node, factor)
            self.speeds[node] = factor
            self._save()
        return {"node": node, "factor": factor}

    def kill_node(self, request: Mapping[str, Any]) -> dict[str, Any]:
        node = self._node(request)
        with self.lock:
            process = self.agents[node]
            if process.poll() is None:
                process.kill()
                process.wait(timeout=AGENT_STOP_TIMEOUT_S)
            self.killed.add(node)
            self._save()
        return {"node": node, "killed": True}

    def restart_node(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Start the node's agent again (killing it first if it runs) on its old port, so
        every address of it stays valid, at the speed it was last set to. It comes back
        empty: whoever used it deploys again."""
        node = self._node(request)
        with self.lock:
            process = self.agents[node]
            if process.poll() is None:
                process.kill()
                process.wait(timeout=AGENT_STOP_TIMEOUT_S)
            offset = self._start_agent(node, self.addresses[node])
            self._wait(node, offset)
            self.killed.discard(node)
            if self.speeds[node] != 1.0:
                self._slow_down(node, self.speeds[node])
            self._save()
        return {"node": node, "pid": self.agents[node].pid}

    # -- helpers ---------------------------------------------------------------------------

    def _node(self, request: Mapping[str, Any]) -> str:
        node = _text(request, "node")
        if node not in self.agents:
            raise InputError(
                f"the testbed has no node {node!r}",
                field="node",
                fix=f"name one of its nodes: {', '.join(self.agents)}",
            )
        return node

    def _slow_down(self, node: str, factor: float) -> None:
        answer = slow_down(self.addresses[node], factor, node=node, timeout_s=5.0)
        if answer is None or not answer.get("ok"):
            detail = "no answer in 5 s" if answer is None else answer.get("error")
            raise TransportError(f"node {node!r}'s agent did not take the speed: {detail}")

    def _start_agent(self, name: str, listen: str) -> int:
        """Spawn the node's agent, its output appended to its log; where in the log it begins."""
        log = (self.state_dir / f"{name}.log").open("ab")
        self.logs.append(log)
        self.agents[name] = _spawn_agent(name, listen, self.factors[name], self.proxies, log)
        return log.tell()

    def _wait(self, name: str, offset: int) -> str:
        """The address the node's agent prints once it listens, from ``offset`` of its log."""
        log = self.state_dir / f"{name}.log"
        return wait_for_address(
            name, self.agents[name], log, timeout_s=AGENT_START_TIMEOUT_S, offset=offset
        )

    def _save(self) -> None:
        TestbedState(
            infra=str(self.infra_path.resolve()),
            supervisor_pid=os.getpid(),
            requester_infra=str(requester_infra_path(self.state_dir)),
            agents={
                name: AgentState(
                    pid=process.pid,
                    address=self.addresses[name],
                    reference_time_s=float(self.infra.node(name).reference_time_s or 0.0),
                    padding_factor=self.factors[name],
                    log=str(self.state_dir / f"{name}.log"),
                    speed_factor=self.speeds[name],
                    killed=name in self.killed,
                )
                for name, process in self.agents.items()
            },
            links=tuple(
                LinkState(
                    source=source,
                    target=target,
                    latency_s=self.clocks[(source, target)].shape.latency_s,
                    bandwidth_bytes_per_s=self.clocks[(source, target)].shape.bandwidth_bytes_per_s,
                    proxy=data.address,
                    probe=probes.address,
                )
                for (source, target), (data, probes) in self.proxies.items()
            ),
            host=self.host,
            control=self.control.address,
            control_token=self.token,
        ).save(state_path(self.state_dir))


def _text(request: Mapping[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise InputError(f"{field} must be a name, got {value!r}", field=field)
    return value


def _number(
    request: Mapping[str, Any],
    field: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
) -> float | None:
    """The optional number ``field`` of ``request``, checked against its bounds."""
    value = request.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{field} must be a finite number, got {value!r}", field=field)
    if (
        (above is not None and value <= above)
        or (at_least is not None and value < at_least)
        or (at_most is not None and value > at_most)
    ):
        bounds = [
            f"> {above:g}" if above is not None else "",
            f"≥ {at_least:g}" if at_least is not None else "",
            f"≤ {at_most:g}" if at_most is not None else "",
        ]
        raise InputError(
            f"{field} {value!r} is out of range",
            field=field,
            fix=f"give a value {' and '.join(b for b in bounds if b)}",
        )
    return float(value)


def _spawn_agent(
    name: str,
    listen: str,
    padding_factor: float,
    proxies: dict[tuple[str, str], tuple[LinkProxy, LinkProxy]],
    log: IO[bytes],
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "qsplit", "agent", "--name", name]
    command += ["--listen", listen, "--padding-factor", repr(padding_factor)]
    command += ["--emulated", "--statistic", AGENT_STATISTIC, "--no-shared-memory"]
    for (source, target), (data, _) in proxies.items():
        if source == name:
            command += ["--route", f"{target}={data.address}"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


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
