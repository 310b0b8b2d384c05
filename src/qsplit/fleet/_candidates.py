"""Candidate plans per device class, from the single-device planner.

Contention couples the classes only through the shared nodes' load, so a good fleet plan is
made of plans that are each good for *some* load on the shared nodes: fast ones that offload
much, frugal ones, ones that use only the edge or only the cloud, and staying on the device.
Each class therefore gets the plan :func:`qsplit.plan.plan` finds at the fleet's weights, the
latency/energy Pareto front on all shared nodes (:func:`qsplit.plan.pareto_front`: the fastest
plan, the most frugal and the splits between them, which trade device load for shared load),
the fastest plan on each shared node alone, and the literature baselines (device-only, each
node alone, best split, min-cut); the fleet MILP then picks one per class. Every
candidate is priced by :func:`qsplit.plan.evaluate` on the class's full infrastructure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qsplit.errors import QsplitError
from qsplit.fleet._batching import BatchProfile
from qsplit.fleet._model import Candidate, Work
from qsplit.fleet._spec import Fleet
from qsplit.model import LayerGraph
from qsplit.plan import (
    LatencyModel,
    PlanningProblem,
    baseline_plans,
    evaluate,
    pareto_front,
    plan,
)
from qsplit.profile import ComputeProfile

FRONT_POINTS = 2
"""Steps of each sweep of :func:`qsplit.plan.pareto_front` (about 10 solves of one built
model): its latency optimum, energy optimum and the splits between them that device-energy
budgets force, 3–4 plans per class in 0.2–0.3 s, about the time of one :func:`plan` call.
Three steps found one plan more per class in ten times the time."""
LATENCY_MODEL: LatencyModel = "sum"
"""The fleet model adds queueing to a plan's latency as if its shared compute were on its
critical path, which the sum model guarantees (docs/fleet.md, Limits)."""
ALONE = "alone"
"""Label of the plan a class gets when planned by itself at the given weights: the
contention-blind baseline."""


@dataclass(frozen=True)
class CandidateSettings:
    """How candidates are generated."""

    w_latency: float = 0.5
    w_energy: float = 0.5
    time_limit_s: float | None = 10.0
    """Per single-device plan."""


def class_candidates(
    fleet: Fleet,
    name: str,
    graph: LayerGraph,
    profiles: Mapping[str, ComputeProfile],
    batching: BatchProfile,
    settings: CandidateSettings = CandidateSettings(),
) -> tuple[Candidate, ...]:
    """The candidates of class ``name``; the first is the class planned alone (:data:`ALONE`).

    ``profiles`` holds one compute profile per node, the class's device under its class name.
    """
    infra = fleet.class_infra(name)
    full = PlanningProblem(
        graph=graph,
        infra=infra,
        profiles={n: profiles[n] for n in infra.node_names},
        w_latency=settings.w_latency,
        w_energy=settings.w_energy,
        latency_model=LATENCY_MODEL,
    )
    found: dict[tuple[tuple[str, str], ...], Candidate] = {}

    def add(label: str, assignment: Mapping[str, str]) -> None:
        key = tuple(sorted(assignment.items()))
        if key not in found:
            found[key] = _candidate(full, label, assignment, profiles, batching)

    add(ALONE, plan(full, time_limit_s=settings.time_limit_s, with_baselines=False).assignment)
    for baseline in baseline_plans(full).values():
        add(baseline.name, baseline.assignment)
    try:
        front = pareto_front(full, FRONT_POINTS, time_limit_s=settings.time_limit_s)
    except QsplitError:
        front = None  # no plan meets the memory bounds: the baselines stand alone
    for point in front.points if front is not None else ():
        add(f"front {point.origin}", point.assignment)
    if len(fleet.shared_names) > 1:
        for node in fleet.shared_names:
            sub_infra = fleet.class_infra(name, (node,))
            try:
                problem = PlanningProblem(
                    graph=graph,
                    infra=sub_infra,
                    profiles={n: profiles[n] for n in sub_infra.node_names},
                    w_latency=1.0,
                    w_energy=0.0,
                    latency_model=LATENCY_MODEL,
                )
                result = plan(problem, time_limit_s=settings.time_limit_s, with_baselines=False)
            except QsplitError:
                continue  # e.g. no plan fits the memory of this node: not a candidate
            add(f"fastest on {node}", result.assignment)
    return tuple(found.values())


def planned_candidate(
    fleet: Fleet,
    name: str,
    graph: LayerGraph,
    profiles: Mapping[str, ComputeProfile],
    batching: BatchProfile,
    assignment: Mapping[str, str],
    label: str,
) -> Candidate:
    """A given plan of class ``name`` (e.g. read from a fleet plan file) as a candidate."""
    infra = fleet.class_infra(name)
    problem = PlanningProblem(
        graph=graph, infra=infra, profiles={n: profiles[n] for n in infra.node_names}
    )
    return _candidate(problem, label, assignment, profiles, batching)


def _candidate(
    problem: PlanningProblem,
    label: str,
    assignment: Mapping[str, str],
    profiles: Mapping[str, ComputeProfile],
    batching: BatchProfile,
) -> Candidate:
    evaluation = evaluate(problem, assignment)
    device = problem.infra.device
    order = problem.graph.block_names
    used = {assignment[b] for b in order} - {device}
    work = []
    for node in sorted(
        used, key=lambda n: next(i for i, b in enumerate(order) if assignment[b] == n)
    ):
        blocks = tuple(b for b in order if assignment[b] == node)
        fixed, per_item = batching.split({b: profiles[node].blocks[b].fp32_s for b in blocks})
        power = problem.infra.node(node).compute_power_w
        work.append(Work(node, blocks, fixed, per_item, power))
    return Candidate(
        label=label,
        assignment=dict(assignment),
        latency_s=evaluation.latency_s,
        energy_j=evaluation.energy_j,
        device_energy_j=evaluation.device_energy_j,
        device_busy_s=evaluation.compute_s.get(device, 0.0),
        work=tuple(work),
    )


def class_signature(fleet: Fleet, name: str) -> tuple[object, ...]:
    """What a class's candidates depend on besides the model and the shared nodes: classes
    with equal signatures share their candidates."""
    c = fleet.device_class(name)
    ends = tuple(
        sorted(
            (
                lk.source == name,
                lk.target if lk.source == name else lk.source,
                lk.bandwidth_bytes_per_s,
                lk.latency_s,
            )
            for lk in c.links
        )
    )
    node = c.node
    return (
        node.compute_power_w,
        node.transmit_power_w,
        node.memory_bytes,
        node.reference_time_s,
        ends,
    )
