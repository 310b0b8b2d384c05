"""The fleet cost model: what a choice of one plan per class and one batch size per shared node
costs, under contention.

Two views of one model, kept side by side so they cannot drift:

* :func:`planning_value` is the objective the MILP (:mod:`._milp`) minimises, computed exactly
  (the MILP only replaces the convex queueing curve by tangents). It assumes each shared node's
  batch service times are deterministic (``cs² = 0``), which keeps its waiting term a function
  of the utilisation alone.
* :func:`assess` is the prediction reported for a choice: the same terms with the real mix of
  components on each node (``cs²`` of the mix), per-class means and p50/p95 from the latency
  distribution (:func:`._queueing.latency_quantiles`), fleet-wide quantiles of the mixture, and
  the throughput the fleet can grow to before a node passes the utilisation bound.

Latency of a request of class ``c`` (plan ``p``, sum latency model)::

    D_cp                        the plan alone: its compute and transfers at batch 1
  + Wq(device)                  its own device is an M/D/1 queue (rate r_c, service = device part)
  + Σ_k (K̄ − 1)·per_item_g     a batch of K takes t(K) = fixed + K·per_item instead of t(1)
  + Σ_k Wq(k)                   waiting for a replica of shared node k (Allen–Cunneen)
  + Σ_k forming_g               waiting for the batch to close (:class:`._queueing.Forming`)

A batch closes at the node's batch size ``b`` or ``batch_wait_s`` (``T``) after it opened, as
Serve's ``@serve.batch`` does, so its size is ``K = min(1 + N(T), b)``; a node has *one*
batcher per component in front of its ``c`` replicas (the served node holds it: docs/serve.md,
*Serving a fleet*), so a batcher sees the component's whole rate ``Λ_g``. ``K̄`` above is the
size of the batch a request is in (``E[K²]/E[K]``); the node's utilisation counts ``fixed`` once
per batch, ``E[K]`` requests.

The MILP cannot carry ``K``'s dependence on the summed rate of a component's classes, so
:func:`planning_value` bounds it per class (:func:`planning_load`, below); :func:`assess`,
the demo's predictions and :func:`~._simulate.simulate` use the time-out model.

A shared node behind another receives that node's departures, not Poisson arrivals:
:func:`assess` and :func:`utilisation` propagate them through the tiers (:func:`_tiers`,
:mod:`._arrivals`: QNA's variability into Allen–Cunneen, a 1-replica node's spacing into
batch filling); the MILP keeps each class's own flow, spaced behind a 1-replica node
(docs/fleet.md, *Arrivals through the tiers*).

Links are not queues: each device has its own links, and the links between shared nodes are
taken as provisioned for the fleet (docs/fleet.md, Limits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from qsplit.errors import InputError
from qsplit.fleet._arrivals import (
    Stream,
    departure_scv,
    departures,
    holding,
    merged_scv,
    split_scv,
    window_rate,
)
from qsplit.fleet._queueing import (
    SATURATED,
    Delay,
    DeviceWait,
    Forming,
    Wait,
    erlang_c,
    latency_distribution,
    quantile,
    waiting_requests,
)
from qsplit.fleet._spec import Fleet

Objective = Literal["latency-energy", "throughput", "p95"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
BATCH_SIZES = (1, 2, 4, 8)
BATCH_WAIT_S = 0.05
"""How long a batch stays open for more requests (Serve's ``batch_wait_timeout_s``)."""
UTILISATION_MAX = 0.8
P95_WAIT_FACTOR = math.log(20)
"""The p95 objective weighs every wait by ln 20 ≈ 3: the 95th percentile of an exponential wait
is ln 20 times its mean (docs/fleet.md, Objectives)."""


@dataclass(frozen=True)
class Work:
    """What one plan runs on one shared node, per request."""

    node: str
    blocks: tuple[str, ...]
    """The plan's blocks on the node, in graph order: plans of any class with the same blocks
    on the same node run the same component, so their requests batch together."""
    fixed_s: float
    """Part of the batch time that does not grow with the batch size."""
    per_item_s: float
    """Part that grows with each request in the batch."""
    compute_power_w: float

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return (self.node, self.blocks)

    def batch_s(self, batch: float) -> float:
        """Time of a batch of ``batch`` requests: ``fixed + batch·per_item``."""
        return self.fixed_s + batch * self.per_item_s

    def energy_j(self, batch: float) -> float:
        """Energy per request at this batch size (the batch's energy shared by its requests)."""
        return self.compute_power_w * self.batch_s(batch) / batch


@dataclass(frozen=True)
class Candidate:
    """One plan a class may run, priced alone by :func:`qsplit.plan.evaluate`."""

    label: str
    """How it was found, e.g. ``plan w_latency=1 on edge``, ``cloud-only``."""
    assignment: Mapping[str, str]
    latency_s: float
    """Per request, alone, batch 1."""
    energy_j: float
    device_energy_j: float
    device_busy_s: float
    """Compute time on the device per request."""
    work: tuple[Work, ...]
    """Per shared node it uses."""

    def device_utilisation(self, rate_hz: float) -> float:
        return rate_hz * self.device_busy_s

    def for_device(self, old: str, new: str) -> Candidate:
        """The same plan for an identical class whose device is called ``new``."""
        if old == new:
            return self
        assignment = {b: new if n == old else n for b, n in self.assignment.items()}
        return replace(self, assignment=assignment)


@dataclass(frozen=True)
class FleetProblem:
    """A fleet, its candidate plans per class and how to choose among them."""

    fleet: Fleet
    candidates: Mapping[str, tuple[Candidate, ...]]
    """Class → its candidates (at least one each)."""
    objective: Objective = "latency-energy"
    w_latency: float = 0.5
    w_energy: float = 0.5
    utilisation_max: float = UTILISATION_MAX
    """Bound on every shared node's utilisation ρ and every device's."""
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    batch_wait_s: float = BATCH_WAIT_S
    """How long a batch on a shared node stays open for more requests (the same on every
    node, and what the serving layer deploys)."""

    def __post_init__(self) -> None:
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"objective {self.objective!r} is unknown; use one of {OBJECTIVES}")
        if not 0 < self.utilisation_max < 1:
            problems.append("utilisation_max must be in (0, 1), e.g. 0.8")
        if not (self.w_latency >= 0 and self.w_energy >= 0 and self.w_latency + self.w_energy > 0):
            problems.append("objective weights must be ≥ 0 and not both 0")
        if (
            not self.batch_sizes
            or any(b < 1 for b in self.batch_sizes)
            or 1 not in self.batch_sizes
        ):
            problems.append("batch sizes must be integers ≥ 1 and include 1")
        if not self.batch_wait_s >= 0:
            problems.append("batch_wait_s must be ≥ 0 seconds, e.g. 0.05")
        for c in self.fleet.classes:
            if not self.candidates.get(c.name):
                problems.append(f"class {c.name!r} has no candidate plan")
        if problems:
            raise InputError("; ".join(problems), field="fleet planning")

    @property
    def total_rate_hz(self) -> float:
        return sum(c.total_rate_hz for c in self.fleet.classes)

    @property
    def scales(self) -> tuple[float, float]:
        """Latency and energy per request that normalise the weighted objective: the
        request-weighted mean of each class's least latency (energy) among its candidates,
        without contention — a lower bound neither objective can beat."""
        total = self.total_rate_hz or 1.0
        latency = energy = 0.0
        for c in self.fleet.classes:
            cands = self.candidates[c.name]
            latency += c.total_rate_hz * min(k.latency_s for k in cands)
            energy += c.total_rate_hz * min(k.energy_j for k in cands)
        return max(latency / total, 1e-12), max(energy / total, 1e-12)


@dataclass(frozen=True)
class Choice:
    """One candidate per class (by index) and one batch size per shared node."""

    candidate: Mapping[str, int]
    batch: Mapping[str, int]

    def of(self, problem: FleetProblem, name: str) -> Candidate:
        return problem.candidates[name][self.candidate[name]]


@dataclass(frozen=True)
class Group:
    """Requests for one component on one shared node, from every class that runs it."""

    blocks: tuple[str, ...]
    classes: tuple[str, ...]
    rate_hz: float
    batch_s: float
    """Time of one batch at the node's batch size."""
    mean_batch: float
    """The mean size of its batches, which close at the batch size or the time-out."""
    forming_s: float
    """A request's mean wait for its batch to close."""
    arrival_scv: float = 1.0
    """Variability (squared coefficient of variation) of its requests' arrivals: 1 from
    devices (Poisson), else propagated from the node they leave (:mod:`._arrivals`)."""


@dataclass(frozen=True)
class NodeLoad:
    """A shared node under the fleet's load."""

    node: str
    replicas: int
    batch: int
    utilisation: float
    wait_s: float
    """Mean wait for a replica (Allen–Cunneen)."""
    p_wait: float
    groups: tuple[Group, ...]

    @property
    def mean_batch(self) -> float:
        """Mean size of the node's batches: its requests over its batches."""
        batches = sum(g.rate_hz / g.mean_batch for g in self.groups)
        return sum(g.rate_hz for g in self.groups) / batches if batches else 1.0

    @property
    def forming_s(self) -> float:
        """A request's mean wait for its batch to close, over the node's requests."""
        rate = sum(g.rate_hz for g in self.groups)
        return sum(g.rate_hz * g.forming_s for g in self.groups) / rate if rate else 0.0


@dataclass(frozen=True)
class ClassOutcome:
    """What one request of a class sees."""

    name: str
    candidate: str
    device_utilisation: float
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    energy_j: float
    device_energy_j: float


@dataclass(frozen=True)
class Outcome:
    """A choice under the fleet's load; latencies ``inf`` where a node is saturated (ρ ≥ 1)."""

    classes: tuple[ClassOutcome, ...]
    nodes: tuple[NodeLoad, ...]
    latency_mean_s: float
    """Request-weighted over the fleet."""
    latency_p50_s: float
    latency_p95_s: float
    energy_j: float
    throughput_hz: float
    """Requests per second the fleet sends (all of them served when stable)."""
    capacity_hz: float
    """Requests per second the fleet could send, rates scaled alike, before a shared node or a
    device passes the utilisation bound."""
    feasible: bool
    """Every utilisation within the bound."""


def node_groups(problem: FleetProblem, choice: Choice) -> dict[str, list[tuple[Work, str, float]]]:
    """Shared node → the works placed there, with their class and the class's request rate."""
    groups: dict[str, list[tuple[Work, str, float]]] = {s: [] for s in problem.fleet.shared_names}
    for c in problem.fleet.classes:
        for work in choice.of(problem, c.name).work:
            groups[work.node].append((work, c.name, c.total_rate_hz))
    return groups


def _merged(
    entries: list[tuple[Work, str, float]],
) -> dict[tuple[str, ...], tuple[Work, list[str], float]]:
    merged: dict[tuple[str, ...], tuple[Work, list[str], float]] = {}
    for work, name, rate in entries:
        if work.blocks in merged:
            w, names, total = merged[work.blocks]
            merged[work.blocks] = (w, [*names, name], total + rate)
        else:
            merged[work.blocks] = (work, [name], rate)
    return merged


def utilisation(problem: FleetProblem, choice: Choice) -> dict[str, float]:
    """Shared node → ρ: per component, its batches per second × their mean time, over the
    replicas (batches formed from the arrivals propagated through the tiers)."""
    return {node: tier.utilisation for node, tier in _tiers(problem, choice).items()}


@dataclass(frozen=True)
class _Batcher:
    """A node's one batcher for one component, fed by the classes that run it."""

    work: Work
    classes: tuple[str, ...]
    streams: tuple[Stream, ...]
    """Per class, its requests' arrivals."""
    forming: Forming

    @property
    def rate_hz(self) -> float:
        return sum(s.rate_hz for s in self.streams)

    @property
    def batches_hz(self) -> float:
        return self.rate_hz / self.forming.mean_size

    @property
    def arrival_scv(self) -> float:
        return merged_scv(self.streams)


@dataclass(frozen=True)
class _Tier:
    """A shared node's batchers and load, what its departures carry downstream."""

    replicas: int
    batchers: dict[tuple[str, ...], _Batcher]
    """Component (blocks) → its batcher."""
    utilisation: float
    arrival_scv: float
    """Of its batches: the batch-rate weighted closes' variability."""
    service_scv: float
    """Of its batch times."""

    def departures(self, blocks: tuple[str, ...], name: str) -> Stream:
        """Class ``name``'s requests leaving the batcher of ``blocks`` (QNA: the node's
        departures, split to the component, then to the batches holding the class, released
        in groups)."""
        batcher = self.batchers[blocks]
        rate = dict(zip(batcher.classes, batcher.streams, strict=True))[name].rate_hz
        if rate <= 0:
            return Stream(rate)
        share, pmf = rate / batcher.rate_hz, batcher.forming.size_pmf
        batches_hz = sum(b.batches_hz for b in self.batchers.values())
        node_scv = departure_scv(
            self.arrival_scv, self.service_scv, self.utilisation, self.replicas
        )
        stream = departures(rate, share, pmf, split_scv(node_scv, batcher.batches_hz / batches_hz))
        if self.replicas > 1:
            return stream
        # one replica: nothing leaves sooner than a batch time after the previous batch, and
        # the gap is exactly that when the next batch holding the class closed before it left
        spacing = batcher.work.batch_s(batcher.forming.mean_size)
        wait_s = _replica_wait(self)[0]
        closed = 1.0  # saturated: the next batch is always waiting
        if math.isfinite(wait_s):
            closed = batcher.forming.close_within(batcher.rate_hz, spacing + wait_s)
        return replace(stream, spacing_s=spacing, back_to_back=holding(share, pmf) * closed)


def _tiers(problem: FleetProblem, choice: Choice) -> dict[str, _Tier]:
    """Every shared node's batchers, with arrivals propagated from the node each class
    visits before (docs/fleet.md, *Arrivals through the tiers*).

    A class's first shared node sees its devices' requests as Poisson; each later one, the
    previous node's departures. Nodes are computed in passes, each from the previous pass's
    departures (the first from Poisson everywhere), as many as the longest plan has shared
    nodes: exact along the tiers' order whatever the order of the nodes."""
    fleet = problem.fleet
    plans = {c.name: (c.total_rate_hz, choice.of(problem, c.name).work) for c in fleet.classes}
    depth = max((len(work) for _, work in plans.values()), default=0)
    tiers: dict[str, _Tier] = {}
    for _ in range(max(depth, 1)):
        feeds: dict[str, dict[tuple[str, ...], list[tuple[Work, str, Stream]]]] = {
            node: {} for node in fleet.shared_names
        }
        for name, (rate, works) in plans.items():
            for stage, work in enumerate(works):
                stream = Stream(rate)
                before = works[stage - 1] if stage else None
                if before is not None and before.node in tiers:
                    stream = tiers[before.node].departures(before.blocks, name)
                feeds[work.node].setdefault(work.blocks, []).append((work, name, stream))
        tiers = {node: _tier(problem, node, choice.batch[node], f) for node, f in feeds.items()}
    return tiers


def _tier(
    problem: FleetProblem,
    node: str,
    batch: int,
    feeds: dict[tuple[str, ...], list[tuple[Work, str, Stream]]],
) -> _Tier:
    replicas = problem.fleet.replicas(node)
    batchers = {}
    for blocks, entries in feeds.items():
        work = entries[0][0]
        streams = tuple(s for _, _, s in entries)
        rate = window_rate(streams, batch, problem.batch_wait_s)
        batchers[blocks] = _Batcher(
            work,
            tuple(n for _, n, _ in entries),
            streams,
            Forming(batch, rate, problem.batch_wait_s, work.per_item_s),
        )
    busy = sum(b.batches_hz * b.work.batch_s(b.forming.mean_size) for b in batchers.values())
    arrival_scv, service_scv = _batch_variability(list(batchers.values()))
    return _Tier(replicas, batchers, busy / replicas, arrival_scv, service_scv)


def _batch_variability(batchers: list[_Batcher]) -> tuple[float, float]:
    """``(ca², cs²)`` of a node's batches: the batch-rate weighted variability of each
    batcher's closes (their timing as Poisson arrivals at the batcher's rate would close them,
    corrected for the arrivals' variability), and that of the batch times (sizes and
    components vary)."""
    rate = sum(b.batches_hz for b in batchers)
    if rate <= 0:
        return 1.0, 0.0
    mean = second = ca2 = 0.0
    for b in batchers:
        w, f, r = b.work, b.forming, b.batches_hz
        mean += r * w.batch_s(f.mean_size)
        second += r * (
            w.fixed_s**2
            + 2 * w.fixed_s * w.per_item_s * f.mean_size
            + w.per_item_s**2 * f.size_second
        )
        ca2 += r * replace(f, rate_hz=b.rate_hz).close_scv(b.arrival_scv)
    mean, second = mean / rate, second / rate
    return ca2 / rate, max(second / mean**2 - 1, 0.0)


def planning_load(
    problem: FleetProblem, work: Work, rate_hz: float, batch: int, after: Work | None = None
) -> float:
    """The utilisation a class sending ``rate_hz`` requests to ``work`` adds to its node, as
    the MILP prices it: its batches' mean size as if no other class ran the component, its
    requests Poisson — or, ``after`` a work on a 1-replica node, spaced at least that work's
    batch-1 time apart (a shifted exponential gap: :mod:`._arrivals`), which a time-out shorter
    than the spacing leaves in batches of 1.

    Why this bound: other classes' requests only fill a component's batches sooner, so the real
    mean size is at least this one and the real utilisation at most the planned. Exact for full
    batches (no time-out) and for a component only one class runs from its devices; behind a
    1-replica node it leaves out the batches that were waiting there (released a batch time
    apart, which fill batches sooner), and a batch time there above the batch-1 time (which
    spaces them wider): docs/fleet.md, *Arrivals through the tiers*."""
    timeout = problem.batch_wait_s
    spacing = 0.0
    if after is not None and problem.fleet.replicas(after.node) == 1:
        spacing = after.batch_s(1)
    rate = window_rate([Stream(rate_hz, spacing_s=spacing)], batch, timeout)
    size = Forming(batch, rate, timeout).mean_size
    return rate_hz * (work.fixed_s / size + work.per_item_s) / problem.fleet.replicas(work.node)


def planning_utilisation(problem: FleetProblem, choice: Choice) -> dict[str, float]:
    """Shared node → ρ as the MILP prices it: the sum of its classes' :func:`planning_load`."""
    result = dict.fromkeys(problem.fleet.shared_names, 0.0)
    for c in problem.fleet.classes:
        works = choice.of(problem, c.name).work
        for i, work in enumerate(works):
            after = works[i - 1] if i else None
            batch = choice.batch[work.node]
            result[work.node] += planning_load(problem, work, c.total_rate_hz, batch, after)
    return result


def planning_value(problem: FleetProblem, choice: Choice) -> tuple[float, float]:
    """``(bottleneck, weighted)``: what the MILP minimises, exactly; ``inf`` when a bound is
    broken. ``bottleneck`` is the largest utilisation (the throughput objective's first stage,
    0 for the others); ``weighted`` the weighted latency/energy (or p95) term.

    Besides :func:`planning_load`'s utilisation, batches are priced full: ``b − 1`` more
    items' time per request and ``(b − 1)/2`` requests filling at each component's batcher
    (Little's law on the fixed-size wait ``(b − 1)/(2λ)``); the time-out only shortens both, so
    the latency is over-estimated, never under (the energy of a batch shared by fewer requests
    is under)."""
    rho = planning_utilisation(problem, choice)
    bound = problem.utilisation_max * (1 + 1e-9)
    device_rho = {
        c.name: choice.of(problem, c.name).device_utilisation(c.rate_hz)
        for c in problem.fleet.classes
        if c.count
    }
    if any(r > bound for r in (*rho.values(), *device_rho.values())):
        return (math.inf, math.inf)
    factor = P95_WAIT_FACTOR if problem.objective == "p95" else 1.0
    latency = energy = 0.0
    for c in problem.fleet.classes:
        cand = choice.of(problem, c.name)
        wait = device_wait(cand, c.rate_hz).mean_s if c.count else 0.0
        latency += c.total_rate_hz * (cand.latency_s + factor * wait)
        energy += c.total_rate_hz * cand.energy_j
    for node, entries in node_groups(problem, choice).items():
        b, replicas = choice.batch[node], problem.fleet.replicas(node)
        for work, _, rate in entries:
            latency += rate * (b - 1) * work.per_item_s
            energy += rate * (work.energy_j(b) - work.energy_j(1))
        latency += factor * waiting_requests(rho[node], replicas)
        latency += factor * len(_merged(entries)) * (b - 1) / 2
    total = problem.total_rate_hz or 1.0
    t_ref, e_ref = problem.scales
    weighted = (
        problem.w_latency * latency / total / t_ref + problem.w_energy * energy / total / e_ref
    )
    bottleneck = max([*rho.values(), *device_rho.values(), 0.0])
    return (bottleneck if problem.objective == "throughput" else 0.0, weighted)


def device_wait(candidate: Candidate, rate_hz: float) -> DeviceWait:
    """M/D/1 at the device: its own requests queue for its own compute."""
    return DeviceWait(rate_hz, candidate.device_busy_s)


def assess(
    problem: FleetProblem, choice: Choice, spread_s: Mapping[str, float] | None = None
) -> Outcome:
    """The predicted outcome of ``choice`` under the fleet's load (see the module docstring).

    ``spread_s``: class → mean of one more independent, exponential part of its latency, the
    serving path's spread around its median cost (calibrated outside the model, by the fleet
    demo: :mod:`qsplit.demo._fleet_predict`); the planner never passes it."""
    tiers = _tiers(problem, choice)
    rho = {node: tier.utilisation for node, tier in tiers.items()}
    nodes: dict[str, NodeLoad] = {}
    for node, tier in tiers.items():
        wait_s, p_wait = _replica_wait(tier)
        groups = tuple(
            Group(
                blocks,
                b.classes,
                b.rate_hz,
                b.work.batch_s(choice.batch[node]),
                b.forming.mean_size,
                b.forming.wait_s,
                b.arrival_scv,
            )
            for blocks, b in tier.batchers.items()
        )
        nodes[node] = NodeLoad(
            node, tier.replicas, choice.batch[node], tier.utilisation, wait_s, p_wait, groups
        )

    outcomes = []
    distributions = []
    bound = problem.utilisation_max * (1 + 1e-9)
    feasible = all(r <= bound for r in rho.values())
    for c in problem.fleet.classes:
        cand = choice.of(problem, c.name)
        device = device_wait(cand, c.rate_hz)
        feasible &= cand.device_utilisation(c.rate_hz) <= bound or not c.count
        fixed = cand.latency_s
        delays: list[Delay] = [device, Wait((spread_s or {}).get(c.name, 0.0), 1.0)]
        energy = cand.energy_j
        for work in cand.work:
            load = nodes[work.node]
            batches = tiers[work.node].batchers[work.blocks].forming
            energy += work.energy_j(batches.mean_size) - work.energy_j(1)
            delays.append(Wait(load.wait_s, load.p_wait))
            delays.append(batches)
        mean = fixed + sum(d.mean_s for d in delays)
        distribution = latency_distribution(fixed, delays)
        p50, p95 = (quantile([distribution], [1.0], q) for q in (0.5, 0.95))
        distributions.append(distribution)
        outcomes.append(
            ClassOutcome(
                c.name,
                cand.label,
                cand.device_utilisation(c.rate_hz),
                mean,
                p50,
                p95,
                energy,
                cand.device_energy_j,
            )
        )
    total = problem.total_rate_hz or 1.0
    weights = [c.total_rate_hz / total for c in problem.fleet.classes]
    bottleneck = max([*rho.values(), *(o.device_utilisation for o in outcomes), 1e-12])
    return Outcome(
        classes=tuple(outcomes),
        nodes=tuple(nodes.values()),
        latency_mean_s=float(np.dot(weights, [o.latency_mean_s for o in outcomes])),
        latency_p50_s=quantile(distributions, weights, 0.5),
        latency_p95_s=quantile(distributions, weights, 0.95),
        energy_j=float(np.dot(weights, [o.energy_j for o in outcomes])),
        throughput_hz=problem.total_rate_hz,
        capacity_hz=problem.total_rate_hz * problem.utilisation_max / bottleneck,
        feasible=feasible,
    )


def _replica_wait(tier: _Tier) -> tuple[float, float]:
    """Allen–Cunneen mean wait and probability of waiting at a node, from its batches'
    variability (:func:`_batch_variability`)."""
    batches = [b for b in tier.batchers.values() if b.batches_hz > 0]
    if not batches:
        return 0.0, 0.0
    if tier.utilisation >= SATURATED:
        return math.inf, 1.0
    rate = sum(b.batches_hz for b in batches)
    mean = sum(b.batches_hz * b.work.batch_s(b.forming.mean_size) for b in batches) / rate
    c, rho = tier.replicas, tier.utilisation
    p_wait = erlang_c(c, c * rho)
    return p_wait * mean / (c * (1 - rho)) * (tier.arrival_scv + tier.service_scv) / 2, p_wait
