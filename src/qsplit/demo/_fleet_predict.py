"""What the fleet model predicts for a deployment as it runs, and the serving path's cost per call.

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

**The serving path's spread.** Ray's time per call varies (the router, the object store, event
loops on a 2-core host), so a measured p95 sits above a model whose own spread is small (the
cameras' p95 −12 % with the median cost alone). The calibration run therefore also gives, per
runtime, the *spread* of that cost (:class:`CallCost`, :func:`call_spread`): each completed
request's latency less what the model and the trace account for — the plan's deterministic
latency, its device's wait (the M/D/1 queue replayed on the device's own send times, Lindley's
recursion with the plan's device time), and the waits for a slot and for a batch to close as
the trace measured them (Ray classes carry them per node; an agent class's requests carry none,
so the model's mean waits stand in) — over its plan's calls. Those residuals are fitted to a
shifted exponential from quantiles only: the scale from the interquartile range (``IQR / ln 3``),
the median kept at the calibrated fixed cost. A calibration run has 7-30 requests per class:
quantiles ignore the one request a stall delayed by seconds, where a variance would not, and
an exponential is the shape of a delay that is mostly small and sometimes long, with a single
parameter to estimate; with fewer than :data:`SPREAD_MIN_REQUESTS` residuals the spread is 0.
A request of a class whose plan makes ``n`` calls then carries ``n`` × the per-call
distribution (:meth:`Predictor.outcome`): its calls are taken as one draw scaled by ``n``,
not ``n`` independent ones, as a slow spell of the host slows all of a request's calls, and so
that the calibrated class's own residuals are reproduced, not narrowed by ``√n``. The
fleet model (:func:`qsplit.fleet.assess`) sums that part with its own, as one more independent
delay. The spread is a serving-layer calibration: the planner never sees it.

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
the nodes' waits, energy) stays the model's. The simulation carries the serving path's median
cost per call, not its spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

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
from qsplit.fleet._model import device_wait
from qsplit.model import LayerGraph
from qsplit.profile import ComputeProfile
from qsplit.serve import FleetMeasurement, FleetRequest

SPREAD_MIN_REQUESTS = 5
"""Fewest residuals a runtime's spread is fitted from: below, the quartiles of a handful of
requests say little, and the runtime keeps a fixed cost (spread 0)."""


@dataclass(frozen=True)
class CallCost:
    """The serving path's time per shared-component call of one device runtime, as a
    distribution: :attr:`shift_s` plus an exponential of mean :attr:`scale_s`."""

    median_s: float
    """Its median, seconds: the calibrated fixed cost (:func:`call_overhead`)."""
    scale_s: float = 0.0
    """Mean of its exponential part, seconds: its spread (0: the fixed cost :attr:`median_s`)."""

    @property
    def shift_s(self) -> float:
        """Its least value: the median less the exponential part's median (``scale · ln 2``)."""
        return self.median_s - self.scale_s * math.log(2)

    @classmethod
    def fit(cls, median_s: float, residuals_s: Sequence[float]) -> CallCost:
        """The cost of median ``median_s`` whose spread is that of ``residuals_s`` (seconds per
        call): an exponential's interquartile range is ``scale · ln 3``."""
        if len(residuals_s) < SPREAD_MIN_REQUESTS:
            return cls(median_s)
        low, high = np.quantile(residuals_s, [0.25, 0.75])
        return cls(median_s, float(high - low) / math.log(3))


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
        call_overhead_s: Mapping[str, float | CallCost] | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> Outcome:
        """The prediction for ``deployment``, each call of a shared component costing
        ``call_overhead_s`` more: device runtime (``ray``, ``agent``) → seconds per call (a
        fixed cost) or its :class:`CallCost` (a fixed cost and a spread)."""
        return self.predict(deployment, call_overhead_s, counts)[0]

    def predict(
        self,
        deployment: FleetDeployment,
        call_overhead_s: Mapping[str, float | CallCost] | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> tuple[Outcome, Simulated | None]:
        """:meth:`outcome`, and with :attr:`autoscale` the simulation its latencies come from
        (``None`` without, or where a node saturates: no steady state to simulate)."""
        problem, choice, calls = self.problem(deployment, counts)
        costs = {
            r: c if isinstance(c, CallCost) else CallCost(c)
            for r, c in (call_overhead_s or {}).items()
        }
        per_class = {c.name: costs.get(c.runtime, CallCost(0.0)) for c in deployment.classes}
        shift = {n: calls[n] * c.shift_s for n, c in per_class.items()}
        spread = {n: calls[n] * c.scale_s for n, c in per_class.items()}
        predicted = assess(_slower(problem, shift), choice, spread)
        if self.autoscale is None or math.isinf(predicted.latency_p95_s):
            return predicted, None
        median = {n: calls[n] * c.median_s for n, c in per_class.items()}
        simulated = simulate(
            _slower(problem, median),
            choice,
            requests=self.requests,
            seed=self.seed,
            autoscale=self.autoscale,
            window_s=self.window_s,
        )
        return _with_latencies(predicted, simulated), simulated

    def calibrate(
        self,
        deployment: FleetDeployment,
        measured: FleetMeasurement,
        counts: Mapping[str, int] | None = None,
    ) -> dict[str, CallCost]:
        """The serving path's cost per call, per device runtime, from ``measured``, a run of
        ``deployment`` with ``counts`` devices per class: its median (:func:`call_overhead`)
        and its spread (:func:`call_spread`)."""
        problem, choice, calls = self.problem(deployment, counts)
        predicted = assess(problem, choice)
        runtimes = {c.name: c.runtime for c in deployment.classes}
        medians = call_overhead(predicted, measured, calls, runtimes)
        residuals = call_spread(problem, choice, predicted, measured, calls, runtimes)
        return {r: CallCost.fit(m, residuals.get(r, ())) for r, m in medians.items()}


def _slower(problem: FleetProblem, extra_s: Mapping[str, float]) -> FleetProblem:
    """``problem`` with each class's every candidate ``extra_s`` slower (class → seconds)."""
    if not any(extra_s.values()):
        return problem
    candidates = {
        name: tuple(replace(k, latency_s=k.latency_s + extra_s.get(name, 0.0)) for k in cands)
        for name, cands in problem.candidates.items()
    }
    return replace(problem, candidates=candidates)


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


def call_spread(
    problem: FleetProblem,
    choice: Choice,
    predicted: Outcome,
    measured: FleetMeasurement,
    calls: Mapping[str, int],
    runtimes: Mapping[str, str],
) -> dict[str, tuple[float, ...]]:
    """Per device runtime, the serving path's time per call in each completed request of
    ``measured`` (``predicted``: the model's outcome of ``problem``'s ``choice``, the run's
    deployment at its device counts): the latency less the plan's deterministic latency, its
    device's replayed wait (:func:`device_waits`) and its waits at the shared nodes, over the
    plan's calls. The waits at the shared nodes are the trace's where the request carries them
    (Ray classes), else the model's mean (agent classes). Classes that call no shared
    component are left out: they have no serving path to measure."""
    expected = {c.name: c for c in predicted.classes}
    residuals: dict[str, list[float]] = {}
    for c in problem.fleet.classes:
        n = calls.get(c.name, 0)
        done = measured.completed(c.name)
        if not n or not done:
            continue
        cand = choice.of(problem, c.name)
        device = device_waits(measured.requests, c.name, cand.device_busy_s)
        model_waits = (
            expected[c.name].latency_mean_s - cand.latency_s - device_wait(cand, c.rate_hz).mean_s
        )
        for r in done:
            traced = r.shared_wait_s or r.shared_forming_s
            waits = (
                sum(r.shared_wait_s.values()) + sum(r.shared_forming_s.values())
                if traced
                else model_waits
            )
            extra = r.latency_s - cand.latency_s - device[(r.device, r.index)] - waits
            residuals.setdefault(runtimes[c.name], []).append(extra / n)
    return {runtime: tuple(values) for runtime, values in residuals.items()}


def device_waits(
    requests: Sequence[FleetRequest], device_class: str, service_s: float
) -> dict[tuple[int, int], float]:
    """(device, request index) → how long each request of ``device_class`` waited for its own
    device, which serves them one at a time, ``service_s`` each, in the order sent: Lindley's
    recursion ``W' = max(0, W + service − gap)`` on the send times (the M/D/1 queue the model
    prices, replayed on the run's own arrivals, so a burst's waits are not taken for the
    serving path's)."""
    waits: dict[tuple[int, int], float] = {}
    mine = sorted(
        (r for r in requests if r.device_class == device_class), key=lambda r: (r.device, r.sent_s)
    )
    previous: FleetRequest | None = None
    wait = 0.0
    for r in mine:
        if previous is not None and previous.device == r.device:
            wait = max(0.0, wait + service_s - (r.sent_s - previous.sent_s))
        else:
            wait = 0.0
        waits[(r.device, r.index)] = wait
        previous = r
    return waits
