"""A fleet plan served on Ray: every shared component once, device classes as Ray actors.

For each device class the plan's assignment is split exactly as for one device
(:func:`qsplit.runtime.build_deployment`, ``agents=False``). A shared component is identified
by its node and its blocks: classes whose plans put the same blocks on the same node run the
*same* component, with one batcher, so their requests batch together. Each shared node is one
Serve application (:class:`~qsplit.serve._node.NodeReplica`) hosting its components, its
``replicas`` slots one FIFO queue of batches, as the fleet model has it; the batches run in it
or on a deployment of worker replicas, fixed or autoscaled by Serve
(:class:`~qsplit.serve._scaling.NodeScaling`). Each class is one Ray
actor hosting its emulated devices (:mod:`qsplit.serve._devices`). Nodes and links are
emulated: nodes and devices pad each run to the profiled time, transfers wait out the planned
links (docs/serve.md, *Serving a fleet*).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from qsplit.errors import InputError
from qsplit.fleet import (
    BatchProfile,
    ClassDeployment,
    Fleet,
    FleetDeployment,
    batch_profile_for,
    fleet_profiles,
)
from qsplit.infra import Infra
from qsplit.model import LayerGraph, analyze
from qsplit.profile import ComputeProfile
from qsplit.runtime import Deployment
from qsplit.serve import _ray
from qsplit.serve._agent_devices import AgentClass, AgentDevices, signature
from qsplit.serve._fleet_parts import (
    SharedComponent,
    class_components,
    class_deployment,
    node_arguments,
    shared_components,
)
from qsplit.serve._measure import FleetBatch, FleetMeasurement, FleetRequest
from qsplit.serve._scaling import WORKERS, NodeScaling
from qsplit.serve._watch import ReplicaWatch, Samples

DEVICE_RESOURCE = "device"
"""The custom resource the class actors are placed by."""

MAX_AGENT_DEVICES = 64
"""Device processes a run may start for the classes that keep the light agent (each one a
Python process with ONNX Runtime, ~100 MiB): beyond it the fleet is refused, to be scaled down."""

START_LEAD_S = 1.0
"""Devices start issuing requests this long after their actors exist (every actor the same
instant)."""


class FleetRun:
    """A fleet deployment running on Ray, its devices issuing requests; from
    :meth:`FleetServing.start`. Devices join and leave while it runs; :meth:`finish` stops
    them and measures."""

    def __init__(
        self,
        actors: Mapping[str, Any],
        applications: Mapping[str, str],
        components: Mapping[str, tuple[str, ...]],
        replicas: Mapping[str, int],
        started: float,
        watch: ReplicaWatch | None = None,
        agents: AgentDevices | None = None,
    ) -> None:
        self.actors = dict(actors)
        """Device class → its Ray actor (the classes that run Ray)."""
        self.agents = agents
        """The device classes that keep the light agent, their processes and gateways."""
        self.applications = dict(applications)
        """Shared node → the Serve application emulating it."""
        self.components = dict(components)
        """Each shared component (node application and key, ``app/key``) → the classes whose
        requests it runs (one component, one batcher, for identical ones of several classes)."""
        self._replicas = dict(replicas)
        self._watch = watch
        self.started = started
        """Epoch seconds at which the devices started issuing requests (time 0 of the run)."""
        self._finished = False

    @property
    def device_classes(self) -> tuple[str, ...]:
        """Every device class of the run: Ray actors' and light agents' alike."""
        return (*self.actors, *self._agent_classes())

    def elapsed_s(self) -> float:
        return time.time() - self.started

    def worker_replicas(self) -> Samples:
        """Shared node → ``(seconds since :attr:`started`, running worker replicas)`` sampled
        from Serve so far; empty when the nodes run their batches in-process."""
        samples = self._watch.samples() if self._watch is not None else {}
        return {n: tuple((t - self.started, k) for t, k in s) for n, s in samples.items()}

    def add_devices(self, device_class: str, count: int) -> tuple[int, ...]:
        """Start ``count`` more devices of ``device_class``; their numbers. A class that keeps
        the light agent starts idle device processes of its own (as many as the fleet file
        counts, started with the run)."""
        ray, _ = _ray.import_ray()
        if self._agent_class(device_class):
            assert self.agents is not None
            return self.agents.add(device_class, count, time.time())
        actor = self._actor(device_class)
        return tuple(ray.get(actor.add.remote(count, time.time())))

    def remove_devices(self, device_class: str, count: int) -> tuple[int, ...]:
        """Stop ``count`` devices of ``device_class`` (the latest started) issuing requests;
        their requests in flight complete. Their numbers."""
        ray, _ = _ray.import_ray()
        if self._agent_class(device_class):
            assert self.agents is not None
            return self.agents.remove(device_class, count)
        return tuple(ray.get(self._actor(device_class).remove.remote(count)))

    def infer(self, device_class: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request of ``device_class`` on ``feeds`` (emulated, outside any measurement)."""
        ray, _ = _ray.import_ray()
        if self._agent_class(device_class):
            assert self.agents is not None
            return self.agents.infer(device_class, feeds)
        return dict(ray.get(self._actor(device_class).infer.remote(dict(feeds))))

    def finish(self, label: str, window_s: tuple[float, float] | None = None) -> FleetMeasurement:
        """Stop every device, wait for its requests, remove the deployment, and measure the
        requests sent in ``window_s`` (seconds since :attr:`started`; default: all)."""
        ray, serve = _ray.import_ray()
        results = dict(
            zip(
                self.actors, ray.get([a.finish.remote() for a in self.actors.values()]), strict=True
            )
        )
        if self.agents is not None:
            results |= self.agents.finish()
        end = self.elapsed_s()
        workers = self.worker_replicas()
        logs = [
            serve.get_deployment_handle(node, app).batches.remote()
            for node, app in self.applications.items()
        ]
        batches = [b for log in logs for b in log.result()]
        self.close()
        crashed = [f"{c}: {e}" for c, r in results.items() for e in r["crashed"]]
        if crashed:
            raise RuntimeError("emulated devices stopped issuing requests: " + "; ".join(crashed))
        start, stop = window_s if window_s is not None else (0.0, end)
        return _measure(
            label, results, batches, self._replicas, self.started, (start, stop), workers
        )

    def close(self) -> None:
        """Remove the actors and the deployment's Serve applications (Ray keeps running)."""
        if self._finished:
            return
        self._finished = True
        if self._watch is not None:
            self._watch.stop()
        ray, serve = _ray.import_ray()
        for actor in self.actors.values():
            ray.kill(actor)
        if self.agents is not None:
            self.agents.end_run()  # the processes stay with the FleetServing for its next run
        for name in self.applications.values():
            serve.delete(name)

    def _agent_classes(self) -> tuple[str, ...]:
        return tuple(self.agents.classes) if self.agents is not None else ()

    def _agent_class(self, device_class: str) -> bool:
        return device_class in self._agent_classes()

    def _actor(self, device_class: str) -> Any:
        try:
            return self.actors[device_class]
        except KeyError:
            raise InputError(
                f"no device class {device_class!r} in this fleet run",
                field="device_class",
                fix=f"use one of {', '.join(self.device_classes)}",
            ) from None


class FleetServing:
    """Ray, started (or joined) once, to run fleet deployments of one fleet and model in turn:
    the plan and its baselines on the same Ray. A context manager; :func:`run_fleet` is one
    run in one."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        model: str | Path,
        profiles: Mapping[str, ComputeProfile] | None = None,
        batching: BatchProfile | None = None,
        input_shapes: Mapping[str, tuple[int, ...]] | None = None,
        calibration: Any = None,
        address: str | None = None,
        threads: int = 1,
        graph_optimization: str = "all",
    ) -> None:
        self.fleet, self.model = fleet, Path(model)
        self._shapes = dict(input_shapes) if input_shapes else None
        _, self.graph = analyze(str(model), self._shapes)
        self.profiles = (
            dict(profiles) if profiles is not None else fleet_profiles(fleet, self.graph)
        )
        self.batching = batching or batch_profile_for(self.graph.model.sha256)
        self._calibration = calibration
        self._threads = threads
        self._optimize = graph_optimization == "all"
        self._built: dict[tuple[Any, ...], Deployment] = {}
        # One name per shared node for all of this instance's runs (one at a time): the gateway
        # agents of the classes that keep the light agent outlive a run, and name theirs.
        prefix = f"qsplit-fleet-{uuid.uuid4().hex[:8]}"
        self._applications = {node: f"{prefix}-{node}" for node in fleet.shared_names}
        self._agents: AgentDevices | None = None
        self._connection = _ray.start(address, [*fleet.shared_names, DEVICE_RESOURCE])

    def start(
        self,
        deployment: FleetDeployment,
        *,
        devices: Mapping[str, int] | None = None,
        seed: int = 0,
        quantized: Collection[str] = (),
        scaling: NodeScaling | None = None,
    ) -> FleetRun:
        """Deploy ``deployment`` and start its devices (``devices``: per class, default the
        plan's counts; a class at 0 still gets its actor, for devices to join later).
        ``quantized`` blocks run in int8 (calibrated as :func:`qsplit.runtime.build_deployment`
        does) wherever they run. ``scaling`` says what the shared nodes run their batches on
        (default: in their own replica)."""
        scaling = scaling or NodeScaling()
        for s in deployment.shared:
            scaling.check(s.node, s.replicas)
        counts = {c.name: c.count for c in deployment.classes} | dict(devices or {})
        unknown = sorted(set(counts) - {c.name for c in deployment.classes})
        if unknown:
            raise InputError(
                f"no device class {', '.join(map(repr, unknown))} in the fleet plan",
                file=deployment.source,
                field="devices",
                fix=f"count devices of {', '.join(c.name for c in deployment.classes)}",
            )
        built = {c.name: self._build(c, tuple(quantized)) for c in deployment.classes}
        agent_classes = self._agent_classes(deployment, built, counts, seed)
        shared = shared_components(
            deployment, built, self.graph, set(quantized), self._fixed_fraction
        )
        applications = {node: self._applications[node] for node, _ in shared}
        on_ray = [(i, c) for i, c in enumerate(deployment.classes) if c.runtime == "ray"]
        walks = {
            c.name: _walk(
                built[c.name], shared, applications, self.fleet.class_infra(c.name), self.graph, c
            )
            for _, c in on_ray
        }
        users = {f"{applications[node]}/{s.key}": s.classes for (node, _), s in shared.items()}
        replicas = {s.node: s.replicas for s in deployment.shared}
        watch = (
            ReplicaWatch({n: (a, n + WORKERS) for n, a in applications.items()})
            if scaling.workers
            else None
        )
        run = FleetRun({}, applications, users, replicas, 0.0, watch)
        try:
            from qsplit.serve._node import deploy_nodes

            # Each is a new process (ONNX Runtime, the components): the class actors and the
            # agent classes' processes start while the nodes deploy.
            self._create_actors(run, on_ray, built, walks, seed)
            run.agents = self._agents_for(agent_classes)
            arguments = node_arguments(
                shared, deployment, applications, self._threads, self._optimize
            )
            deploy_nodes(arguments, scaling)
            if run.agents is not None:
                run.agents.deploy(agent_classes)
            self._start_devices(run, counts)
        except BaseException:
            run.close()
            self._close_agents()  # in whatever state the failure left them: started afresh
            raise
        return run

    def _agent_classes(
        self,
        deployment: FleetDeployment,
        built: Mapping[str, Deployment],
        counts: Mapping[str, int],
        seed: int,
    ) -> list[AgentClass]:
        """The classes that keep the light agent, each with a process per device (as many as
        the fleet file counts, or ``counts`` if more); refused beyond
        :data:`MAX_AGENT_DEVICES` before anything starts."""
        classes = [
            AgentClass(
                c.name,
                max(c.count, counts[c.name]),
                c.rate_hz,
                built[c.name],
                self.fleet.class_infra(c.name),
                self.fleet.device_class(c.name).links,
                _inputs(built[c.name], seed + number),
                (seed, number),
            )
            for number, c in enumerate(deployment.classes)
            if c.runtime == "agent"
        ]
        processes = sum(c.devices for c in classes)
        if processes > MAX_AGENT_DEVICES:
            raise InputError(
                f"the classes that keep the light agent ({', '.join(c.name for c in classes)}) "
                f"have {processes} devices, each a process of its own; at most "
                f"{MAX_AGENT_DEVICES} run on one host",
                file=deployment.source,
                field="devices",
                fix="scale the fleet down (`qsplit fleet demo --devices N`, `Fleet.scaled`), or "
                "give those classes `runtime: ray` to emulate them as Ray actors",
            )
        return classes

    def _agents_for(self, classes: Sequence[AgentClass]) -> AgentDevices | None:
        """The processes of the classes that keep the light agent: those of the previous run
        when they are the same classes and device counts (4-6 s of starts saved per run),
        else started now, beside the nodes' deploy (:meth:`AgentDevices.deploy` follows);
        ``None`` when every class runs Ray."""
        if self._agents is not None and self._agents.signature != signature(classes):
            self._close_agents()
        if not classes or self._agents is not None:
            return self._agents
        ray, _ = _ray.import_ray()
        agents = AgentDevices(
            classes,
            self._applications,
            self.fleet.infra,
            ray.get_runtime_context().gcs_address,
            self._threads,
            self._optimize,
        )
        try:
            agents.spawn()
        except BaseException:
            agents.close()
            raise
        self._agents = agents
        return agents

    def _close_agents(self) -> None:
        if self._agents is not None:
            self._agents.close()
            self._agents = None

    def _create_actors(
        self,
        run: FleetRun,
        classes: Sequence[tuple[int, ClassDeployment]],
        built: Mapping[str, Deployment],
        walks: Mapping[str, list[dict[str, Any]]],
        seed: int,
    ) -> None:
        """One actor per class that runs Ray (created, not waited for)."""
        from qsplit.serve._devices import DeviceClassActor

        for number, c in classes:
            infra = self.fleet.class_infra(c.name)
            used = {n for n in c.assignment.values() if n != c.name}
            run.actors[c.name] = DeviceClassActor.options(
                resources={DEVICE_RESOURCE: _ray.REPLICA_SHARE}
            ).remote(
                walks[c.name],
                built[c.name].model_outputs,
                {n: _hops(infra, n, c.name) for n in used},
                _inputs(built[c.name], seed + number),
                c.rate_hz,
                (seed, number),
                self._threads,
                self._optimize,
            )

    def _start_devices(self, run: FleetRun, counts: Mapping[str, int]) -> None:
        """Every class's devices, from the same instant, once every actor exists."""
        ray, _ = _ray.import_ray()
        # An actor starts in a new worker process (Ray, ONNX Runtime): slow on a busy host.
        ray.get([a.__ray_ready__.remote() for a in run.actors.values()])
        run.started = time.time() + START_LEAD_S
        adding = [a.add.remote(counts[n], run.started) for n, a in run.actors.items()]
        if run.agents is not None:
            for name in run.agents.classes:
                run.agents.add(name, counts[name], run.started)
        ray.get(adding)

    def run(
        self,
        deployment: FleetDeployment,
        *,
        duration_s: float,
        warmup_s: float = 5.0,
        devices: Mapping[str, int] | None = None,
        seed: int = 0,
        label: str = "fleet",
        quantized: Collection[str] = (),
        scaling: NodeScaling | None = None,
    ) -> FleetMeasurement:
        """Run ``deployment`` and measure the requests sent in the ``duration_s`` after a
        ``warmup_s`` (each waited for until it completes).

        The window opens a warm-up after :meth:`start` returned, i.e. after every class actor
        has started its devices: on a loaded host an actor can take 15-45 s to exist, and a
        window counted from the run's nominal start would then open before any device."""
        run = self.start(
            deployment, devices=devices, seed=seed, quantized=quantized, scaling=scaling
        )
        try:
            first = run.elapsed_s() + warmup_s
            last = first + duration_s
            time.sleep(max(0.0, last - run.elapsed_s()))
            return run.finish(label, (first, last))
        finally:
            run.close()

    def close(self) -> None:
        self._close_agents()
        _ray.stop(self._connection, ())

    def __enter__(self) -> FleetServing:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _build(self, c: ClassDeployment, quantized: tuple[str, ...]) -> Deployment:
        """The class's plan split for it, with every component's profiled time (cached: a
        baseline often repeats a class's plan)."""
        key = (c.name, tuple(sorted(c.assignment.items())), quantized)
        if key not in self._built:
            self._built[key] = class_deployment(
                c,
                self.fleet,
                self.model,
                quantized=quantized,
                calibration=self._calibration,
                input_shapes=self._shapes,
                profiles=self.profiles,
            )
        return self._built[key]

    def _fixed_fraction(self, node: str, blocks: Sequence[str]) -> float:
        times = {b: self.profiles[node].blocks[b].fp32_s for b in blocks}
        fixed, per_item = self.batching.split(times)
        return fixed / (fixed + per_item) if fixed + per_item > 0 else 0.0


def run_fleet(
    deployment: FleetDeployment,
    fleet: Fleet,
    *,
    model: str | Path,
    duration_s: float,
    warmup_s: float = 5.0,
    devices: Mapping[str, int] | None = None,
    seed: int = 0,
    label: str = "fleet",
    profiles: Mapping[str, ComputeProfile] | None = None,
    batching: BatchProfile | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    quantized: Collection[str] = (),
    calibration: Any = None,
    address: str | None = None,
    scaling: NodeScaling | None = None,
) -> FleetMeasurement:
    """Run ``deployment`` (a fleet plan, or a baseline as ``FleetPlan.deployment(name)``) on
    Ray with emulated devices, nodes and links, and measure it.

    ``fleet`` (with its ``infra``) gives the classes' links and speeds; ``devices`` the
    emulated devices per class (default: the plan's counts); requests sent in the ``duration_s``
    after ``warmup_s`` are measured. ``profiles`` (node or class → compute profile; default:
    :func:`qsplit.fleet.fleet_profiles`) and ``batching`` set the emulated speeds;
    ``input_shapes`` runs the model at another input size; ``scaling`` what the shared nodes
    run their batches on (default: in-process). Starts Ray once; use
    :class:`FleetServing` to run several deployments on one Ray.
    """
    with FleetServing(
        fleet,
        model=model,
        profiles=profiles,
        batching=batching,
        input_shapes=input_shapes,
        calibration=calibration,
        address=address,
    ) as serving:
        return serving.run(
            deployment,
            duration_s=duration_s,
            warmup_s=warmup_s,
            devices=devices,
            seed=seed,
            label=label,
            quantized=quantized,
            scaling=scaling,
        )


def _walk(
    built: Deployment,
    shared: Mapping[tuple[str, tuple[str, ...]], SharedComponent],
    applications: Mapping[str, str],
    infra: Infra,
    graph: LayerGraph,
    c: ClassDeployment,
) -> list[dict[str, Any]]:
    """The class's components as :class:`~qsplit.serve._devices.DeviceClassActor` takes them."""
    producer = {t: spec.node for spec in built.components for t in spec.outputs}
    result = []
    for spec, blocks in class_components(built, graph, c):
        entry: dict[str, Any] = {
            "name": spec.name,
            "node": spec.node,
            "inputs": list(spec.inputs),
            "outputs": list(spec.outputs),
            "app": None,
        }
        if spec.node == c.name:
            entry |= {"onnx": spec.onnx, "compute_s": spec.compute_s}
        else:
            crossing: dict[str, list[str]] = {}
            for tensor in spec.inputs:
                source = producer.get(tensor, c.name)
                if source not in (c.name, spec.node):
                    crossing.setdefault(source, []).append(tensor)
            entry |= {
                "app": applications[spec.node],
                "key": shared[(spec.node, blocks)].key,
                "uplink": _hops(infra, c.name, spec.node),
                "links": [[t, _hops(infra, s, spec.node)] for s, t in crossing.items()],
            }
        result.append(entry)
    return result


def _hops(infra: Infra, source: str, target: str) -> list[list[float]]:
    return [[h.latency_s, h.bandwidth_bytes_per_s] for h in infra.route(source, target).hops]


def _inputs(built: Deployment, seed: int) -> list[dict[str, np.ndarray]]:
    """Two seeded random inputs per class, as ``qsplit run --random`` makes them."""
    rng = np.random.default_rng(seed)
    return [
        {s.name: rng.random(s.shape).astype(s.dtype) for s in built.input_specs} for _ in range(2)
    ]


def _measure(
    label: str,
    results: Mapping[str, Mapping[str, Any]],
    batch_log: Sequence[Mapping[str, Any]],
    replicas: Mapping[str, int],
    started: float,
    window: tuple[float, float],
    workers: Samples | None = None,
) -> FleetMeasurement:
    """The device classes' records and the nodes' ``batch_log``, relative to the run's
    start, restricted to the window, and the worker replicas sampled in it (``workers``:
    seconds since the start, as :meth:`FleetRun.worker_replicas` gives them)."""
    first, last = window
    requests = []
    runs: dict[str, int] = {}
    overruns: dict[str, int] = {}
    completions = 0
    for name, result in results.items():
        for r in result["requests"]:
            if r["done"] is not None and first <= r["done"] - started < last:
                completions += 1
            sent = r["sent"] - started
            if not first <= sent < last:
                continue
            waits: dict[str, float] = {}
            forming: dict[str, float] = {}
            for step in r["trace"]:
                waits[step["node"]] = waits.get(step["node"], 0.0) + step["wait_s"]
                forming[step["node"]] = forming.get(step["node"], 0.0) + step["forming_s"]
            done = None if r["done"] is None else r["done"] - started
            requests.append(
                FleetRequest(name, r["device"], r["index"], sent, done, r["error"], waits, forming)
            )
        inside = [overrun for at, overrun in result["runs"] if first <= at - started < last]
        runs[name], overruns[name] = len(inside), sum(inside)
    busy = dict.fromkeys(replicas, 0.0)
    sizes: dict[str, dict[int, int]] = {n: {} for n in replicas}
    ran = []
    for step in batch_log:
        node, start, end = step["node"], step["start"] - started, step["end"] - started
        busy[node] += max(0.0, min(end, last) - max(start, first))
        if first <= start < last:
            ran.append(
                FleetBatch(
                    node,
                    step["replica"],
                    step["batch"],
                    step["received"] - started,
                    start,
                    end,
                    step["returned"] - started,
                    step["target_s"],
                    step["size"],
                    step["overrun"],
                )
            )
            sizes[node][step["size"]] = sizes[node].get(step["size"], 0) + 1
            runs[node] = runs.get(node, 0) + 1
            overruns[node] = overruns.get(node, 0) + int(step["overrun"])
    requests.sort(key=lambda r: r.sent_s)
    return FleetMeasurement(
        label=label,
        duration_s=last - first,
        requests=tuple(requests),
        busy_s=busy,
        replicas=dict(replicas),
        batch_sizes=sizes,
        overruns=overruns,
        runs=runs,
        completions=completions,
        batches=tuple(sorted(ran, key=lambda b: b.start_s)),
        worker_replicas={
            n: tuple((t, k) for t, k in s if first <= t < last) for n, s in (workers or {}).items()
        },
    )
