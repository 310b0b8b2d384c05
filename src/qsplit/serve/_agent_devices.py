"""Device classes of a fleet run that keep qsplit's light agent: devices that cannot run Ray.

Each device of such a class is a real ``qsplit agent`` process (no Ray in it), emulating the
class's speed (``--emulated``: each component runs in its profiled time, one at a time). Each
shared node the classes offload to gets a *gateway*, an agent process that joined the run's Ray
(``qsplit agent --backend ray --fleet-app``, :class:`~qsplit.serve.FleetNodeHost`): its
components run on the node's Serve application, in the same batchers and slots as the Ray
classes' requests. Every directed link a device has is a user-space link emulator
(:class:`qsplit.testbed.LinkProxy`) of its own, as on the testbed; links between shared nodes
are one emulator per direction. Each device's requests are issued by a
:class:`qsplit.runtime.Session` of its own, open-loop at the class's seeded Poisson arrivals
(the same schedule a Ray class's device gets), through the agent protocol like any device's.

What the measurement gets from these devices is end to end (sent, done, error) and each run of
their own components (whether it overran its profiled time, from the agent's report); their
batches are in the nodes' own logs (:meth:`~qsplit.serve._node.NodeReplica.batches`).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from qsplit.errors import InputError, TransportError
from qsplit.infra import Infra, Link
from qsplit.runtime import Deployment, InferResult, Session, connect, renamed_deployment
from qsplit.serve._emulation import next_arrival
from qsplit.testbed import LinkClock, LinkProxy, LinkShape, stop_processes, wait_for_address

START_TIMEOUT_S = 120.0
"""How long an agent process may take to listen (a gateway joins Ray: tens of seconds on a
loaded host)."""
STOP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 300.0
"""How long a device waits for a request's answer: as long as an agent keeps a request open
(``AgentSettings.max_deadline_s``), so that a saturated configuration's latency is measured,
as a Ray class's device waits for its, not cut at a session's default 30 s."""


@dataclass(frozen=True)
class AgentClass:
    """One device class served through gateways, as :class:`AgentDevices` starts it."""

    name: str
    devices: int
    """Device processes started (the class's devices; those not issuing are idle)."""
    rate_hz: float
    deployment: Deployment
    """The class's plan split for it, its device named like the class."""
    infra: Infra
    """The class's single-device infrastructure (its device, the shared nodes, the links)."""
    links: tuple[Link, ...]
    """The class's own links (one device's, to and from the shared nodes)."""
    inputs: Sequence[Mapping[str, np.ndarray]]
    seed: tuple[int, ...]


Signature = tuple[tuple[str, int, tuple[Link, ...]], ...]


def signature(classes: Sequence[AgentClass]) -> Signature:
    """What agent processes serve ``classes``: each class with its device count and links
    (the runs whose classes have one signature can share the processes)."""
    return tuple((c.name, c.devices, c.links) for c in classes)


@dataclass
class _Device:
    number: int
    name: str
    process: subprocess.Popen[bytes]
    session: Session | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    issuer: threading.Thread | None = None
    pending: list[Future[InferResult]] = field(default_factory=list)


class AgentDevices:
    """Agent processes for the devices of ``classes`` and a gateway for each shared node in
    ``applications`` (node → its fleet Serve application), on the Ray at ``ray_address``.
    :meth:`spawn` starts them and :meth:`deploy` deploys every device's plan; devices then
    issue requests from :meth:`add` on, until :meth:`remove` or :meth:`finish`;
    :meth:`end_run` undeploys, and the processes serve the next run's plans (of the same
    classes and device counts: :attr:`signature`) until :meth:`close`."""

    def __init__(
        self,
        classes: Sequence[AgentClass],
        applications: Mapping[str, str],
        infra: Infra,
        ray_address: str,
        threads: int = 1,
        optimize: bool = True,
    ) -> None:
        self.classes = {c.name: c for c in classes}
        self._applications = dict(applications)
        self._infra = infra
        self._ray_address = ray_address
        self._threads = threads
        self._optimization = "all" if optimize else "disabled"
        self._logs = tempfile.TemporaryDirectory(prefix="qsplit-fleet-agents-")
        self._addresses: dict[str, str] = {}
        self._proxies: dict[tuple[str, str], LinkProxy] = {}
        self.gateways: dict[str, subprocess.Popen[bytes]] = {}
        """Shared node → its gateway agent's process."""
        self.devices: dict[str, list[_Device]] = {c.name: [] for c in classes}
        self._records: dict[str, list[dict[str, Any]]] = {c.name: [] for c in classes}
        self._runs: dict[str, list[tuple[float, bool]]] = {c.name: [] for c in classes}
        self._targets = {
            c.name: {s.name: s.compute_s for s in c.deployment.components if s.node == c.name}
            for c in classes
        }
        self._lock = threading.Lock()

    @property
    def signature(self) -> Signature:
        """What the processes serve (:func:`signature`)."""
        return signature(tuple(self.classes.values()))

    def spawn(self) -> None:
        """Start the link emulators, the gateways and the devices' agents (every process at
        once, not waited for: they start while the fleet's nodes deploy)."""
        self._link_shared_nodes()
        for c in self.classes.values():
            for number in range(c.devices):
                self._link_device(c, f"{c.name}-{number}")
        for node, application in self._applications.items():
            command = ["--backend", "ray", "--ray-address", self._ray_address]
            self.gateways[node] = self._spawn(node, [*command, "--fleet-app", application])
        for c in self.classes.values():
            for number in range(c.devices):
                name = f"{c.name}-{number}"
                process = self._spawn(name, ["--emulated", "--statistic", "min"])
                self.devices[c.name].append(_Device(number, name, process))

    def deploy(self, classes: Sequence[AgentClass] = ()) -> None:
        """Once the fleet's nodes run: wait for every process to listen (the first time), and
        deploy each device's plan through its own session; ``classes``: this run's (the same
        :attr:`signature`, other plans), default those the processes were started for."""
        if classes:
            self._start_run(classes)
        processes = dict(self.gateways) | {
            d.name: d.process for devices in self.devices.values() for d in devices
        }
        for name, process in processes.items():
            if name not in self._addresses:
                log = Path(self._logs.name) / f"{name}.log"
                self._addresses[name] = wait_for_address(
                    name, process, log, timeout_s=START_TIMEOUT_S
                )
        for c in self.classes.values():
            for device in self.devices[c.name]:
                device.session = self._session(c, device.name)

    def _start_run(self, classes: Sequence[AgentClass]) -> None:
        if signature(classes) != self.signature:
            raise ValueError("a run's agent classes differ from the processes'")
        self.classes = {c.name: c for c in classes}
        self._targets = {
            c.name: {s.name: s.compute_s for s in c.deployment.components if s.node == c.name}
            for c in classes
        }

    def add(self, name: str, count: int, start: float) -> tuple[int, ...]:
        """Start ``count`` idle devices of class ``name`` issuing requests from ``start``."""
        idle = [d for d in self.devices[name] if d.issuer is None]
        if count > len(idle):
            raise InputError(
                f"class {name!r} keeps the light agent and has {len(idle)} idle device "
                f"process(es), not {count}",
                field="devices",
                fix=f"start the run with fewer of its devices issuing, or list more under "
                f"{name!r} (count) in the fleet file: its devices are processes started with "
                "the run",
            )
        c = self.classes[name]
        for device in idle[:count]:
            device.issuer = threading.Thread(
                target=self._issue, args=(c, device, max(start, time.time())), daemon=True
            )
            device.issuer.start()
        return tuple(d.number for d in idle[:count])

    def remove(self, name: str, count: int) -> tuple[int, ...]:
        """Stop the ``count`` latest started devices issuing (requests in flight complete)."""
        active = [d for d in self.devices[name] if d.issuer is not None and not d.stop.is_set()]
        stopped = active[len(active) - count :] if count else []
        for device in stopped:
            device.stop.set()
        return tuple(d.number for d in stopped)

    def infer(self, name: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request through the class's first device (outside any measurement)."""
        session = self.devices[name][0].session
        assert session is not None
        return session.infer(feeds)

    def finish(self) -> dict[str, dict[str, Any]]:
        """Stop every device issuing, wait for its requests, and hand over what happened, per
        class, as a Ray class's actor does."""
        for devices in self.devices.values():
            for device in devices:
                device.stop.set()
        for devices in self.devices.values():
            for device in devices:
                if device.issuer is not None:
                    device.issuer.join()
                for pending in list(device.pending):
                    pending.result()
        with self._lock:
            return {
                name: {"requests": list(records), "runs": list(self._runs[name]), "crashed": []}
                for name, records in self._records.items()
            }

    def end_run(self) -> None:
        """Stop the devices issuing, undeploy and close every session, forget the run's
        records: the processes stay for the next run."""
        for devices in self.devices.values():
            for index, device in enumerate(devices):
                device.stop.set()
                if device.issuer is not None:
                    device.issuer.join()
                if device.session is not None:
                    # An agent gone has nothing left to free.
                    with contextlib.suppress(TransportError):
                        device.session.undeploy()
                    device.session.close()
                devices[index] = _Device(device.number, device.name, device.process)
        with self._lock:
            self._records = {name: [] for name in self.classes}
            self._runs = {name: [] for name in self.classes}

    def close(self) -> None:
        """End the run, stop every process and emulator."""
        self.end_run()
        processes = [
            *self.gateways.values(),
            *(d.process for devices in self.devices.values() for d in devices),
        ]
        stop_processes(processes, timeout_s=STOP_TIMEOUT_S)
        for proxy in self._proxies.values():
            proxy.close()
        self._logs.cleanup()

    def _issue(self, c: AgentClass, device: _Device, start: float) -> None:
        """Send the device's requests at its Poisson arrivals from ``start`` until stopped:
        the arrivals a Ray class's device of this number gets."""
        session = device.session
        assert session is not None
        rng = np.random.default_rng([*c.seed, device.number])
        at, index = start, 0
        while True:
            at = next_arrival(c.rate_hz, at, rng)
            if device.stop.wait(max(0.0, at - time.time())):
                return
            record: dict[str, Any] = {"device": device.number, "index": index, "sent": at}
            future = session.submit(index, c.inputs[index % len(c.inputs)])
            future.add_done_callback(lambda f, r=record, n=c.name: self._done(n, r, f))
            device.pending.append(future)
            index += 1

    def _done(self, name: str, record: dict[str, Any], future: Future[InferResult]) -> None:
        if future.cancelled():  # its session closed under it: a run ended without finish
            return
        result = future.result()
        error = None if result.error is None else str(result.error)[:500]
        record.update(done=None if error else time.time(), error=error, trace=[])
        # An emulated agent reports a run padded to its target, or its own longer time.
        targets = self._targets[name]
        runs = [
            (record["sent"], run.compute_s > (targets[run.component] or 0.0) + 1e-6)
            for run in result.record.runs
            if run.component in targets
        ]
        with self._lock:
            self._records[name].append(record)
            self._runs[name].extend(runs)

    def _link_shared_nodes(self) -> None:
        """One emulator per directed link between shared nodes (shared by all devices)."""
        nodes = set(self._applications)
        links = [lk for lk in self._infra.links if {lk.source, lk.target} <= nodes]
        self._link(links)

    def _link_device(self, c: AgentClass, name: str) -> None:
        """The device's own links, an emulator per direction, named after the device."""
        self._link([_renamed(lk, c.name, name) for lk in c.infra.links if lk in c.links])

    def _link(self, links: Sequence[Link]) -> None:
        clocks = {
            (lk.source, lk.target): LinkClock(LinkShape(lk.latency_s, lk.bandwidth_bytes_per_s))
            for lk in links
        }
        for (source, target), clock in clocks.items():
            self._proxies[(source, target)] = LinkProxy(
                lambda t=target: _host_port(self._addresses[t]),
                clock,
                clocks.get((target, source)),
            )

    def _spawn(self, name: str, options: list[str]) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "qsplit", "agent", "--name", name]
        command += ["--listen", "127.0.0.1:0", "--no-shared-memory"]
        command += ["--threads", str(self._threads), *options]
        for (source, target), proxy in self._proxies.items():
            if source == name:
                command += ["--route", f"{target}={proxy.address}"]
        log: IO[bytes] = (Path(self._logs.name) / f"{name}.log").open("wb")
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def _session(self, c: AgentClass, name: str) -> Session:
        """A session of device ``name`` of class ``c``, its plan deployed: its own agent
        directly, each shared node through the emulator of its link to it, or directly (control
        only) where it has none and the runtime relays its data."""
        nodes = {s.node for s in c.deployment.components} - {c.name}
        view = {name: self._addresses[name]} | {
            n: self._proxies[(name, n)].address
            if (name, n) in self._proxies
            else self._addresses[n]
            for n in nodes | set(self._applications)
        }
        deployment = renamed_deployment(c.deployment, {c.name: name}, view)
        device = replace(c.infra.node(c.name), name=name, address=view[name])
        infra = replace(
            c.infra,
            device=name,
            nodes=(device, *(n for n in c.infra.nodes if n.name != c.name)),
            links=tuple(_renamed(lk, c.name, name) for lk in c.infra.links),
        )
        return connect(
            deployment, infra, timeout_s=REQUEST_TIMEOUT_S, graph_optimization=self._optimization
        )


def _renamed(link: Link, old: str, new: str) -> Link:
    return replace(
        link,
        source=new if link.source == old else link.source,
        target=new if link.target == old else link.target,
    )


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)
