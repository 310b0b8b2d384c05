"""What the fleet model predicts for a deployment as it runs, and the serving path's fixed cost.

Every configuration of the fleet demo is predicted the same way, from the deployment that ran
(:func:`qsplit.fleet.deployed_choice` then :func:`qsplit.fleet.assess`), at the batch sizes and
device counts it ran with.

**The serving path's fixed cost.** The fleet model prices compute, transfers and waits; the
emulated fleet adds, per call of a shared component, what Ray costs (the handle call through
Serve's router to the replica actor, the tensors through the object store, the device actor's
event loop): about 45 ms per component on this host (docs/BENCHMARKS.md, Ray Serve against the
agents), not a queueing effect. Like the single-plan cost model's ``Overhead``, it is measured
rather than assumed: a **calibration run** of the fleet plan with one device per class (no
contention to speak of) gives, per class, measured minus predicted p50; divided by the shared
components its plan calls, weighted by the requests, that is the fixed cost per call, which
every configuration's prediction then carries (:meth:`Predictor.outcome`). The calibration
run is not one of the configurations judged, so the queueing model is still checked against
runs it was not fitted to.

The cost is calibrated **per device runtime** (:class:`qsplit.fleet.DeviceClass`): a Ray class's
call is a handle call from its actor; a call of a class that keeps the light agent crosses the
agent protocol to a gateway, which then calls Serve — a path of its own (measured on this
host at 28-40 ms per call against the actors' 22-25 ms, docs/BENCHMARKS.md). Pooled, one
value taken from a calibration run that one kind of class dominated misprices the other.

**Autoscaled workers.** The model prices a node's planned ``c`` servers throughout. Run on
workers Serve autoscales (``NodeScaling("autoscale")``), a node has fewer whenever Serve has
scaled it down, which at a load of about one busy server cost a measured phase 2.3× the
predicted p95 (docs/BENCHMARKS.md). Given the run's :class:`~qsplit.fleet.AutoscalePolicy`,
the p50/p95 (fleet-wide and per class) are therefore those of the fleet simulation with Serve's
autoscaler on every shared node (:func:`qsplit.fleet.simulate`, the same Poisson arrivals
model), and the simulation's mean workers per node come with them; the rest (utilisation,
the nodes' waits, energy) stays the model's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from qsplit.fleet import (
    UTILISATION_MAX,
    AutoscalePolicy,
    BatchProfile,
    Choice,
    Fleet,
    FleetDeployment,
    FleetProblem,
    Outcome,
    Simulated,
    assess,
    deployed_choice,
    simulate,
)
from qsplit.model import LayerGraph
from qsplit.profile import ComputeProfile
from qsplit.serve import FleetMeasurement


@dataclass(frozen=True)
class Predictor:
    """The fleet model of one fleet, model and set of profiles."""

    fleet: Fleet
    graph: LayerGraph
    profiles: Mapping[str, ComputeProfile]
    batching: BatchProfile
    utilisation_max: float = UTILISATION_MAX
    autoscale: AutoscalePolicy | None = None
    """The autoscaling policy of the shared nodes' workers, if autoscaled: latencies are then
    simulated with it."""
    seed: int = 0
    """Seed of that simulation."""
    requests: int = 20_000
    """Requests that simulation runs."""
    window_s: float | None = None
    """The length of a measured run's window: that simulation then also gives the p95 of
    every window of that length (``Simulated.window_p95_s``), the spread one run samples."""

    def problem(
        self, deployment: FleetDeployment, counts: Mapping[str, int] | None = None
    ) -> tuple[FleetProblem, Choice, dict[str, int]]:
        """The deployment as a one-candidate problem (``counts``: devices per class, default
        the fleet's), its choice, and the shared-component calls of each class's plan per
        request (one per shared node it visits)."""
        fleet = self.fleet
        if counts is not None:
            classes = tuple(replace(c, count=counts.get(c.name, c.count)) for c in fleet.classes)
            fleet = replace(fleet, classes=classes)
        problem, choice = deployed_choice(
            fleet,
            self.graph,
            self.profiles,
            deployment,
            batching=self.batching,
            utilisation_max=self.utilisation_max,
        )
        calls = {c.name: len(choice.of(problem, c.name).work) for c in fleet.classes}
        return problem, choice, calls

    def outcome(
        self,
        deployment: FleetDeployment,
        call_overhead_s: Mapping[str, float] | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> Outcome:
        """The prediction for ``deployment``, each call of a shared component costing
        ``call_overhead_s`` more: device runtime (``ray``, ``agent``) → seconds per call."""
        return self.predict(deployment, call_overhead_s, counts)[0]

    def predict(
        self,
        deployment: FleetDeployment,
        call_overhead_s: Mapping[str, float] | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> tuple[Outcome, Simulated | None]:
        """:meth:`outcome`, and with :attr:`autoscale` the simulation its latencies come from
        (``None`` without, or where a node saturates: no steady state to simulate)."""
        problem, choice, calls = self.problem(deployment, counts)
        runtimes = {c.name: c.runtime for c in deployment.classes}
        extra = {n: calls[n] * (call_overhead_s or {}).get(r, 0.0) for n, r in runtimes.items()}
        if any(extra.values()):
            candidates = {
                name: tuple(replace(k, latency_s=k.latency_s + extra[name]) for k in cands)
                for name, cands in problem.candidates.items()
            }
            problem = replace(problem, candidates=candidates)
        predicted = assess(problem, choice)
        if self.autoscale is None or math.isinf(predicted.latency_p95_s):
            return predicted, None
        simulated = simulate(
            problem,
            choice,
            requests=self.requests,
            seed=self.seed,
            autoscale=self.autoscale,
            window_s=self.window_s,
        )
        return _with_latencies(predicted, simulated), simulated


def _with_latencies(predicted: Outcome, simulated: Simulated) -> Outcome:
    """``predicted`` with the fleet's and every class's mean, p50 and p95 simulated."""
    classes = tuple(
        replace(c, latency_mean_s=m, latency_p50_s=p50, latency_p95_s=p95)
        for c in predicted.classes
        for m, p50, p95 in [simulated.per_class.get(c.name, (math.nan,) * 3)]
    )
    return replace(
        predicted,
        classes=classes,
        latency_mean_s=simulated.latency_mean_s,
        latency_p50_s=simulated.latency_p50_s,
        latency_p95_s=simulated.latency_p95_s,
    )


def call_overhead(
    predicted: Outcome,
    measured: FleetMeasurement,
    calls: Mapping[str, int],
    runtimes: Mapping[str, str],
) -> dict[str, float]:
    """Fixed cost per shared-component call, per device runtime (``runtimes``: class → its
    runtime): over the classes of that runtime, measured minus predicted p50 over the calls
    each plan makes, weighted by the class's completed requests; 0 where the measurement is
    below the prediction; a runtime none of whose classes calls a shared component (or
    completed a request) is left out."""
    excess: dict[str, float] = {}
    weight: dict[str, float] = {}
    for c in predicted.classes:
        done = len(measured.completed(c.name))
        if not done or not calls.get(c.name):
            continue
        runtime = runtimes[c.name]
        gap = measured.quantile(0.5, c.name) - c.latency_p50_s
        excess[runtime] = excess.get(runtime, 0.0) + done * gap
        weight[runtime] = weight.get(runtime, 0.0) + done * calls[c.name]
    return {r: max(excess[r] / weight[r], 0.0) for r in weight}
