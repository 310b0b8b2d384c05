"""Candidate plans per device class, from the single-device planner.

Contention couples the classes only through the shared nodes' load, so a good fleet plan is
made of plans that are each good for *some* load on the shared nodes: fast ones that offload
much, frugal ones, ones that use only the edge or only the cloud, and staying on the device.
Each class therefore gets the plans :func:`qsplit.plan.plan` finds for a few objective weights,
on all shared nodes and on each shared node alone, plus the literature baselines (device-only,
each node alone, best split, min-cut); the fleet MILP then picks one per class. Every
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
from qsplit.plan import LatencyModel, PlanningProblem, baseline_plans, evaluate, plan
from qsplit.profile import ComputeProfile

WEIGHTS = (1.0, 0.5, 0.0)
"""``w_latency`` of the plans made per node subset (``w_energy = 1 − w_latency``)."""
ALONE = "alone"
"""Label of the plan a class gets when planned by itself at the given weights: the
contention-blind baseline."""


@dataclass(frozen=True)
class CandidateSettings:
    """How candidates are generated."""

    w_latency: float = 0.5
    w_energy: float = 0.5
    latency_model: LatencyModel = "sum"
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
        latency_model=settings.latency_model,
    )
    found: dict[tuple[tuple[str, str], ...], Candidate] = {}

    def add(label: str, assignment: Mapping[str, str]) -> None:
        key = tuple(sorted(assignment.items()))
        if key not in found:
            found[key] = _candidate(full, label, assignment, profiles, batching)

    add(ALONE, plan(full, time_limit_s=settings.time_limit_s, with_baselines=False).assignment)
    for baseline in baseline_plans(full).values():
        add(baseline.name, baseline.assignment)
    subsets = [fleet.shared_names] + [(n,) for n in fleet.shared_names]
    for nodes in subsets if len(fleet.shared_names) > 1 else subsets[:1]:
        sub_infra = fleet.class_infra(name, nodes)
        for w in WEIGHTS:
            try:
                problem = PlanningProblem(
                    graph=graph,
                    infra=sub_infra,
                    profiles={n: profiles[n] for n in sub_infra.node_names},
                    w_latency=w,
                    w_energy=1 - w,
                    latency_model=settings.latency_model,
                )
                result = plan(problem, time_limit_s=settings.time_limit_s, with_baselines=False)
            except QsplitError:
                continue  # e.g. no plan fits the memory of this subset: not a candidate
            add(f"w_latency={w:g} on {'+'.join(nodes)}", result.assignment)
    return tuple(found.values())


def _candidate(
    problem: PlanningProblem,
    label: str,
    assignment: Mapping[str, str],
    profiles: Mapping[str, ComputeProfile],
    batching: BatchProfile,
) -> Candidate:
    evaluation = evaluate(problem, assignment)
    device = problem.infra.device
    work = []
    for node in problem.infra.node_names:
        if node == device:
            continue
        blocks = tuple(b for b in problem.graph.block_names if assignment[b] == node)
        if not blocks:
            continue
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
