"""``qsplit fleet demo``: plan a fleet, run the plan and its baselines on the emulated fleet.

The fleet planner (:func:`qsplit.fleet.plan_fleet`) chooses one plan per device class under the
shared nodes' contention; this runs that choice and the baselines it is compared with (every
class planned alone — contention-blind —, cloud-only, device-only, and the fleet plan at batch
size 1 where it batches) on Ray with emulated devices, nodes and links
(:func:`qsplit.serve.run_fleet`), each for the same duration and with the same seeded Poisson
arrivals, and sets every measurement beside its prediction (:func:`qsplit.report.compare_fleet`).

Every configuration is predicted the same way, from the deployment that runs, under the
emulated fleet's device counts, so prediction and measurement describe the same system; a
calibration run (the fleet plan with a quarter of the devices) first measures the serving path's
cost per shared-component call, its median and its spread, which every prediction then carries
(:mod:`qsplit.demo._fleet_predict`).

The run directory gets ``fleet-plan.json`` (the planner's file), ``fleet-demo.json`` (kind
``fleet-demo``, docs/formats.md: every configuration's prediction, measurement and requests) and
the figures of :func:`qsplit.report.plot_fleet`.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from qsplit._jsonio import write_json
from qsplit.assets import bundled_model_path
from qsplit.demo._config import EXAMPLES
from qsplit.demo._fleet_predict import CallCost, Predictor
from qsplit.demo._pipeline import Progress, _Silent
from qsplit.demo._streams import plan_label
from qsplit.fleet import (
    BATCH_WAIT_S,
    UTILISATION_MAX,
    AutoscalePolicy,
    BatchProfile,
    Fleet,
    FleetDeployment,
    FleetPlan,
    Outcome,
    Simulated,
    batch_profile_for,
    fleet_profiles,
    load_fleet,
    plan_fleet,
)
from qsplit.model import LayerGraph, analyze
from qsplit.profile import ComputeProfile
from qsplit.report import FleetResult, Versus, compare_fleet, plot_fleet, versus
from qsplit.serve import FleetMeasurement, FleetServing, NodeScaling

FLEET_DEMO_KIND = "fleet-demo"
FLEET_DEMO_SCHEMA_VERSION = 1
FLEET_DEMO_FILE = "fleet-demo.json"
FLEET = "fleet"
BATCH_ONE = "fleet-batch1"
"""The fleet plan with every shared node at batch size 1: the measured batching gain."""

Runner = Callable[[FleetDeployment, str, Mapping[str, int] | None], tuple[FleetMeasurement, float]]
"""Runs one configuration (deployment, label, devices per class or ``None`` for the plan's
counts) for the demo's warm-up and duration; its measurement and when its measured window
ended, in the measurement's clock."""
CALIBRATION = "calibration"
"""The fleet plan with a quarter of the devices: the serving path's cost per call."""


@dataclass(frozen=True)
class FleetDemoConfig:
    """What ``qsplit fleet demo`` varies; the defaults are its defaults."""

    out: Path
    infra: Path = EXAMPLES / "fleet-testbed.yaml"
    """An infrastructure file with a ``fleet:`` section, sized for this machine."""
    devices: int | None = None
    """Scale the fleet to this many devices (classes keep their shares); ``None``: as in the
    file. The plan is made for the scaled fleet, so the emulated devices are the planned ones."""
    duration_s: float = 60.0
    """Measured window of each configuration."""
    warmup_s: float = 5.0
    seed: int = 0
    """Seed of every configuration's Poisson arrivals: all see the same requests."""
    model: Path = field(default_factory=bundled_model_path)
    input_shapes: Mapping[str, tuple[int, ...]] | None = None
    """Plan and serve the model at these input shapes (e.g. ``images: (1, 3, 320, 320)``, so
    that this host's real compute stays below the emulated times); default: the model's."""
    batch_profile: BatchProfile | None = None
    """Default: the model's shipped batch profile."""
    utilisation_max: float = UTILISATION_MAX
    batch_wait_s: float = BATCH_WAIT_S
    """How long a batch on a shared node stays open: planned, predicted and served."""
    rate_scale: float = 1.0
    """Multiply every class's request rate by this (the file's rates: 1)."""
    baselines: tuple[str, ...] = ("alone", "cloud-only", "device-only")
    """Baselines to run, by the planner's names (``cloud-only`` stands for ``<cloud>-only``)."""
    batch_one: bool = True
    """Also run the fleet plan at batch size 1 when it batches somewhere."""
    calibrate: bool = True
    """Run the fleet plan with a quarter of the devices (at least one per class) first and add
    the measured cost per shared-component call, its median and spread, to every prediction
    (:mod:`qsplit.demo._fleet_predict`)."""
    forced_batch: Mapping[str, int] = field(default_factory=dict)
    """Shared node → batch size: also run the fleet plan with these batch sizes (labelled
    ``fleet-<node>-b<size>``), to measure batching where the planner chose none."""
    plot: bool = True
    address: str | None = None
    """A Ray cluster to join; default: an embedded Ray."""
    node_scaling: NodeScaling = field(default_factory=NodeScaling)
    """What the shared nodes run their batches on: in-process (default), fixed or autoscaled
    worker replicas (:class:`qsplit.serve.NodeScaling`)."""


@dataclass(frozen=True)
class FleetDemoOutcome:
    """What the demo ran and found, and where it wrote it."""

    run_dir: Path
    plan: FleetPlan
    results: tuple[FleetResult, ...]
    measurements: tuple[FleetMeasurement, ...]
    versus: tuple[Versus, ...]
    """The fleet plan against each other configuration, measured."""
    figures: tuple[Path, ...]
    call_cost: Mapping[str, CallCost]
    """The serving path's cost per shared-component call, per device runtime (``ray``,
    ``agent``), from the calibration run (empty without one), carried by every prediction."""
    uncorrected: Mapping[str, Outcome]
    """Configuration → its prediction without that cost."""
    median_cost: Mapping[str, Outcome]
    """Configuration → its prediction with the cost's median only, as a fixed cost (no
    spread): what the spread changes."""
    autoscale: AutoscalePolicy | None = None
    """The workers' autoscaling policy when the nodes ran on autoscaled workers: the p50/p95
    predictions are then simulated with it (:mod:`qsplit.demo._fleet_predict`)."""
    simulated: Mapping[str, Simulated] = field(default_factory=dict)
    """Configuration → the simulation its prediction came from, for each configuration
    predicted by simulating the autoscaler: its workers per node and the p95 of every window
    of the run's duration."""

    @property
    def call_overhead_s(self) -> dict[str, float]:
        """The cost's median per call, per device runtime."""
        return {r: c.median_s for r, c in self.call_cost.items()}

    def result(self, label: str) -> FleetResult:
        return next(r for r in self.results if r.label == label)


def configurations(plan: FleetPlan, config: FleetDemoConfig) -> dict[str, FleetDeployment]:
    """Label → deployment: the fleet plan, its batch-1 twin when it batches, its twin at the
    forced batch sizes, the baselines."""
    chosen = plan.deployment()
    result = {FLEET: chosen}
    if config.batch_one and any(s.batch_size > 1 for s in chosen.shared):
        result[BATCH_ONE] = replace(
            chosen,
            shared=tuple(replace(s, batch_size=1) for s in chosen.shared),
            source=BATCH_ONE,
        )
    if config.forced_batch:
        label = "-".join([FLEET, *(f"{k}-b{b}" for k, b in config.forced_batch.items())])
        result[label] = replace(
            chosen,
            shared=tuple(
                replace(s, batch_size=config.forced_batch.get(s.node, s.batch_size))
                for s in chosen.shared
            ),
            source=label,
        )
    for name in config.baselines:
        label = next((b for b in plan.baselines if b == name or b.endswith(name)), None)
        if label is not None:
            result[label] = plan.deployment(label)
    return result


def run_fleet_demo(
    config: FleetDemoConfig, progress: Progress | None = None, runner: Runner | None = None
) -> FleetDemoOutcome:
    """Plan, run every configuration, compare, write the run directory (see the module
    docstring). ``runner`` replaces the Ray fleet (tests run the orchestration without Ray)."""
    progress = progress or _Silent()
    fleet = load_fleet(config.infra)
    if config.devices is not None:
        fleet = fleet.scaled(config.devices)
    if config.rate_scale != 1.0:
        classes = tuple(replace(c, rate_hz=c.rate_hz * config.rate_scale) for c in fleet.classes)
        fleet = replace(fleet, classes=classes)
    shapes = dict(config.input_shapes) if config.input_shapes else None
    _, graph = analyze(str(config.model), shapes)
    profiles = fleet_profiles(fleet, graph)
    batching = config.batch_profile or batch_profile_for(graph.model.sha256)
    step = progress.task("planning the fleet", 1)
    plan = plan_fleet(
        fleet,
        graph,
        profiles,
        batching=batching,
        utilisation_max=config.utilisation_max,
        batch_wait_s=config.batch_wait_s,
    )
    step(1)
    config.out.mkdir(parents=True, exist_ok=True)
    plan.save(config.out / "fleet-plan.json")
    deployments = configurations(plan, config)
    scaling = config.node_scaling
    autoscale = scaling.policy if scaling.mode == "autoscale" else None
    predictor = Predictor(
        fleet,
        graph,
        profiles,
        batching,
        config.utilisation_max,
        autoscale=autoscale,
        seed=config.seed,
        window_s=config.duration_s,
    )
    costs: dict[str, CallCost] = {}
    results, measurements = [], []
    with ExitStack() as stack:
        if runner is None:
            step = progress.task("starting Ray", 1)
            runner = _ray_runner(stack, fleet, profiles, batching, config)
            step(1)
        step = progress.task(
            f"running {len(deployments) + config.calibrate} configurations"
            f" × {config.warmup_s + config.duration_s:g} s",
            len(deployments) + config.calibrate,
        )
        if config.calibrate:
            few = {c.name: max(1, c.count // 4) for c in fleet.classes}
            measured = runner(deployments[FLEET], CALIBRATION, few)
            costs = predictor.calibrate(deployments[FLEET], measured, few)
            step(1)
        medians = {r: c.median_s for r, c in costs.items()}
        uncorrected, median_cost, simulations = {}, {}, {}
        for label, deployment in deployments.items():
            measured = runner(deployment, label, None)
            uncorrected[label] = predictor.outcome(deployment)
            median_cost[label] = predictor.outcome(deployment, medians)
            predicted, simulated = predictor.predict(deployment, costs)
            if simulated is not None:
                simulations[label] = simulated
            results.append(compare_fleet(predicted, measured))
            measurements.append(measured)
            step(1)
    fleet_result = results[0]
    against = tuple(versus(fleet_result, r) for r in results[1:])
    figures = plot_fleet(results, measurements, config.out) if config.plot else ()
    outcome = FleetDemoOutcome(
        config.out,
        plan,
        tuple(results),
        tuple(measurements),
        against,
        figures,
        costs,
        uncorrected,
        median_cost,
        autoscale,
        simulations,
    )
    write_json(
        config.out / FLEET_DEMO_FILE,
        FLEET_DEMO_KIND,
        FLEET_DEMO_SCHEMA_VERSION,
        _document(outcome, deployments, fleet, graph, config),
    )
    return outcome


def _ray_runner(
    stack: ExitStack,
    fleet: Fleet,
    profiles: Mapping[str, ComputeProfile],
    batching: BatchProfile,
    config: FleetDemoConfig,
) -> Runner:
    """Every configuration on one Ray (started once: 20-60 s on a loaded host)."""
    serving = stack.enter_context(
        FleetServing(
            fleet,
            model=config.model,
            profiles=profiles,
            batching=batching,
            input_shapes=config.input_shapes,
            address=config.address,
        )
    )

    def run(
        deployment: FleetDeployment, label: str, devices: Mapping[str, int] | None
    ) -> FleetMeasurement:
        return serving.run(
            deployment,
            duration_s=config.duration_s,
            warmup_s=config.warmup_s,
            devices=devices,
            seed=config.seed,
            label=label,
            scaling=config.node_scaling,
        )

    return run


def _simulated(simulated: Simulated | None) -> dict[str, Any]:
    """A configuration's simulated autoscaler in the results file (empty without one)."""
    if simulated is None:
        return {"predicted_workers": {}, "predicted_window_p95_s": []}
    return {
        "predicted_workers": {node: list(w) for node, w in simulated.servers.items()},
        "predicted_window_p95_s": list(simulated.window_band()),
    }


def _latencies(predicted: Outcome) -> dict[str, Any]:
    """A prediction's p50 and p95, fleet-wide and per class, in the results file."""
    return {
        "latency_p50_s": predicted.latency_p50_s,
        "latency_p95_s": predicted.latency_p95_s,
        "classes": {
            c.name: {"latency_p50_s": c.latency_p50_s, "latency_p95_s": c.latency_p95_s}
            for c in predicted.classes
        },
    }


def _document(
    outcome: FleetDemoOutcome,
    deployments: Mapping[str, FleetDeployment],
    fleet: Fleet,
    graph: LayerGraph,
    config: FleetDemoConfig,
) -> dict[str, Any]:
    nodes = (*(c.name for c in fleet.classes), *fleet.shared_names)
    configurations = []
    for result, measured in zip(outcome.results, outcome.measurements, strict=True):
        deployment = deployments[result.label]
        configurations.append(
            {
                **result.to_dict(),
                "plans": {c.name: plan_label(c.assignment, nodes) for c in deployment.classes},
                "batch_size": {s.node: s.batch_size for s in deployment.shared},
                **_simulated(outcome.simulated.get(result.label)),
                "uncorrected": _latencies(outcome.uncorrected[result.label]),
                "median_cost": _latencies(outcome.median_cost[result.label]),
                "requests": [
                    [r.device_class, r.device, r.index, r.sent_s, r.done_s, r.error]
                    for r in measured.requests
                ],
            }
        )
    return {
        "model": {"path": str(config.model), "sha256": graph.model.sha256},
        "infra": str(config.infra),
        "input_shapes": {k: list(v) for k, v in (config.input_shapes or {}).items()},
        "devices": {c.name: c.count for c in fleet.classes},
        "rate_hz": {c.name: c.rate_hz for c in fleet.classes},
        "replicas": {s.node: s.replicas for s in fleet.shared},
        "duration_s": config.duration_s,
        "warmup_s": config.warmup_s,
        "seed": config.seed,
        "plan_file": "fleet-plan.json",
        "call_overhead_s": outcome.call_overhead_s,
        "call_spread_s": {r: c.scale_s for r, c in outcome.call_cost.items()},
        "node_workers": config.node_scaling.mode,
        "prediction": "queueing-model" if outcome.autoscale is None else "simulated-autoscaler",
        "autoscale": None if outcome.autoscale is None else asdict(outcome.autoscale),
        "request_fields": ["class", "device", "index", "sent_s", "done_s", "error"],
        "configurations": configurations,
        "versus": [{**vars(v), "meets_goal": v.meets_goal()} for v in outcome.versus],
        "figures": [p.name for p in outcome.figures],
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        },
    }
