"""``plan_fleet``: candidates per class → the fleet MILP → the choice assessed, beside baselines.

The result says what a serving layer needs: per device class the plan its devices run, and per
shared node the components it hosts, each with the batch size and the node's replicas.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qsplit._jsonio import write_json
from qsplit.errors import InputError
from qsplit.fleet._batching import BatchProfile, batch_profile_for
from qsplit.fleet._candidates import (
    ALONE,
    CandidateSettings,
    class_candidates,
    class_signature,
    planned_candidate,
)
from qsplit.fleet._milp import solve_fleet
from qsplit.fleet._model import (
    BATCH_SIZES,
    BATCH_WAIT_S,
    UTILISATION_MAX,
    Candidate,
    Choice,
    ClassOutcome,
    FleetProblem,
    Objective,
    Outcome,
    assess,
)
from qsplit.fleet._planfile import (
    FLEET_PLAN_KIND,
    FLEET_PLAN_SCHEMA_VERSION,
    ClassDeployment,
    FleetDeployment,
    HostedComponent,
    SharedDeployment,
)
from qsplit.fleet._spec import Fleet
from qsplit.model import LayerGraph
from qsplit.profile import ComputeProfile, load_compute_profiles, shipped_profile

BASELINES = ("alone", "cloud-only", "device-only")


@dataclass(frozen=True)
class FleetPlan:
    """The chosen plans, their predicted outcome under contention, and the baselines'."""

    problem: FleetProblem
    choice: Choice
    outcome: Outcome
    baselines: Mapping[str, tuple[Choice, Outcome]]
    """``alone`` (every class planned by itself: contention-blind), ``cloud-only``,
    ``device-only``; each at batch size 1."""
    candidates_time_s: float
    status: str
    """``optimal``, or ``time-limit`` when the time limit stopped the MILP (best choice found)."""
    solve_time_s: float
    columns: int
    rows: int

    @property
    def fleet(self) -> Fleet:
        return self.problem.fleet

    def to_dict(self) -> dict[str, Any]:
        """The plan file's body: per class its plan, per shared node what it hosts."""
        p, fleet = self.problem, self.problem.fleet
        classes = []
        for c, out in zip(fleet.classes, self.outcome.classes, strict=True):
            cand = self.choice.of(p, c.name)
            classes.append(
                {
                    "name": c.name,
                    "count": c.count,
                    "rate_hz": c.rate_hz,
                    "runtime": c.runtime,
                    "plan": cand.label,
                    "assignment": dict(cand.assignment),
                    "predicted": _class_predicted(out),
                }
            )
        shared = [
            {
                "node": n.node,
                "replicas": n.replicas,
                "batch_size": n.batch,
                "batch_wait_s": p.batch_wait_s,
                "utilisation": n.utilisation,
                "wait_s": n.wait_s,
                "components": [
                    {
                        "blocks": list(g.blocks),
                        "classes": list(g.classes),
                        "rate_hz": g.rate_hz,
                        "batch_s": g.batch_s,
                    }
                    for g in n.groups
                ],
            }
            for n in self.outcome.nodes
        ]
        return {
            "objective": {
                "name": p.objective,
                "w_latency": p.w_latency,
                "w_energy": p.w_energy,
                "utilisation_max": p.utilisation_max,
                "batch_sizes": list(p.batch_sizes),
            },
            "classes": classes,
            "shared": shared,
            "predicted": _summary(self.outcome),
            "baselines": {name: _summary(out) for name, (_, out) in self.baselines.items()},
            "solver": {
                "status": self.status,
                "candidates_time_s": self.candidates_time_s,
                "solve_time_s": self.solve_time_s,
                "columns": self.columns,
                "rows": self.rows,
                "candidates": {c.name: len(p.candidates[c.name]) for c in fleet.classes},
            },
        }

    def save(self, path: str | Path) -> Path:
        return write_json(path, FLEET_PLAN_KIND, FLEET_PLAN_SCHEMA_VERSION, self.to_dict())

    def deployment(self, baseline: str | None = None) -> FleetDeployment:
        """What a serving layer runs for the chosen plans, or for one of the :attr:`baselines`
        (by its name there, e.g. ``alone``): the same value the plan file reads back as."""
        if baseline is None:
            return fleet_deployment(self.problem, self.choice, self.outcome)
        try:
            choice, outcome = self.baselines[baseline]
        except KeyError:
            raise InputError(
                f"no baseline {baseline!r} in this fleet plan",
                field="baseline",
                fix=f"use one of {', '.join(self.baselines)}",
            ) from None
        return fleet_deployment(self.problem, choice, outcome, source=baseline)


def _summary(outcome: Outcome) -> dict[str, Any]:
    return {
        "feasible": outcome.feasible,
        "latency_mean_s": outcome.latency_mean_s,
        "latency_p50_s": outcome.latency_p50_s,
        "latency_p95_s": outcome.latency_p95_s,
        "energy_j": outcome.energy_j,
        "throughput_hz": outcome.throughput_hz,
        "capacity_hz": outcome.capacity_hz,
        "utilisation": {n.node: n.utilisation for n in outcome.nodes},
    }


def _class_predicted(outcome: ClassOutcome) -> dict[str, Any]:
    values = asdict(outcome)
    del values["name"], values["candidate"]  # the class entry says both
    return values


def fleet_deployment(
    problem: FleetProblem,
    choice: Choice,
    outcome: Outcome | None = None,
    *,
    source: str | None = None,
) -> FleetDeployment:
    """``choice`` (the planner's, or a baseline's) as a serving layer reads it: per class its
    assignment, per shared node its replicas, batch size and the components it hosts."""
    outcome = outcome or assess(problem, choice)
    classes = tuple(
        ClassDeployment(
            c.name, c.count, c.rate_hz, dict(choice.of(problem, c.name).assignment), c.runtime
        )
        for c in problem.fleet.classes
    )
    shared = tuple(
        SharedDeployment(
            n.node,
            n.replicas,
            n.batch,
            tuple(HostedComponent(g.blocks, g.classes, g.rate_hz) for g in n.groups),
            problem.batch_wait_s,
        )
        for n in outcome.nodes
    )
    return FleetDeployment(classes, shared, source)


def fleet_profiles(
    fleet: Fleet, graph: LayerGraph, paths: Iterable[str | Path] = ()
) -> dict[str, ComputeProfile]:
    """One compute profile per shared node and per class (keyed by the class name): from
    ``paths`` where given, else the model's shipped profile scaled to the node's
    ``reference_time``."""
    given = {node: profile for node, (_, profile) in load_compute_profiles(paths).items()}
    specs = [
        (n.name, n.reference_time_s) for n in fleet.infra.nodes if n.name in fleet.shared_names
    ]
    specs += [(c.name, c.node.reference_time_s) for c in fleet.classes]
    profiles: dict[str, ComputeProfile] = {}
    missing = []
    for name, reference_time_s in specs:
        profile = given.get(name)
        if profile is None and reference_time_s is not None:
            profile = shipped_profile(graph, name, reference_time_s)
        if profile is None:
            missing.append(name)
        else:
            profiles[name] = profile
    if missing:
        raise InputError(
            f"no compute profile for {', '.join(missing)}",
            file=fleet.source,
            fix="give those nodes and classes a reference_time (the bundled model ships a "
            "profile), or pass their profiles with --profiles",
        )
    return profiles


def plan_fleet(
    fleet: Fleet,
    graph: LayerGraph,
    profiles: Mapping[str, ComputeProfile],
    *,
    batching: BatchProfile | None = None,
    objective: Objective = "latency-energy",
    w_latency: float = 0.5,
    w_energy: float = 0.5,
    utilisation_max: float = UTILISATION_MAX,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    batch_wait_s: float = BATCH_WAIT_S,
    time_limit_s: float | None = 60.0,
) -> FleetPlan:
    """Plan every class of ``fleet`` jointly under the shared nodes' utilisation bound.

    Classes with the same device, links and rate share their candidates (planned once).
    Raises :class:`InfeasibleError` when no choice keeps every node under the bound.
    """
    batching = batching or batch_profile_for(graph.model.sha256)
    settings = CandidateSettings(w_latency=w_latency, w_energy=w_energy)
    started = time.perf_counter()
    candidates = {}
    planned: dict[tuple[object, ...], tuple[str, tuple[Candidate, ...]]] = {}
    for c in fleet.classes:
        key = class_signature(fleet, c.name)
        if key not in planned:
            planned[key] = (
                c.name,
                class_candidates(fleet, c.name, graph, profiles, batching, settings),
            )
        first, cands = planned[key]
        candidates[c.name] = tuple(k.for_device(first, c.name) for k in cands)
    candidates_time_s = time.perf_counter() - started
    problem = FleetProblem(
        fleet,
        candidates,
        objective,
        w_latency,
        w_energy,
        utilisation_max,
        batch_sizes,
        batch_wait_s,
    )
    solution = solve_fleet(problem, time_limit_s)
    return FleetPlan(
        problem=problem,
        choice=solution.choice,
        outcome=assess(problem, solution.choice),
        baselines=baseline_choices(problem),
        candidates_time_s=candidates_time_s,
        status=solution.status,
        solve_time_s=solution.solve_time_s,
        columns=solution.columns,
        rows=solution.rows,
    )


def baseline_choices(problem: FleetProblem) -> dict[str, tuple[Choice, Outcome]]:
    """The baselines of :data:`BASELINES`, each assessed under the fleet's load at batch 1."""
    fleet = problem.fleet
    cloud = next(
        (n.name for n in fleet.infra.nodes if n.name in fleet.shared_names and n.role == "cloud"),
        fleet.shared_names[-1],
    )
    batch = {k: 1 for k in fleet.shared_names}
    result = {}
    for name in BASELINES:
        picks = {}
        for c in fleet.classes:
            cands = problem.candidates[c.name]
            if name == ALONE:
                index = next((i for i, k in enumerate(cands) if k.label == ALONE), 0)
            else:
                target = c.name if name == "device-only" else cloud
                index = next(
                    (i for i, k in enumerate(cands) if set(k.assignment.values()) == {target}),
                    -1,
                )
            if index < 0:
                break
            picks[c.name] = index
        else:
            choice = Choice(picks, batch)
            label = f"{cloud}-only" if name == "cloud-only" else name
            result[label] = (choice, assess(problem, choice))
    return result


def deployed_choice(
    fleet: Fleet,
    graph: LayerGraph,
    profiles: Mapping[str, ComputeProfile],
    deployment: FleetDeployment,
    *,
    batching: BatchProfile | None = None,
    utilisation_max: float = UTILISATION_MAX,
) -> tuple[FleetProblem, Choice]:
    """A fleet plan read back from its file (:func:`load_fleet_plan`) as a problem with one
    candidate per class and the file's batch sizes, to assess or simulate it on ``fleet``
    (which may have other device counts than the fleet it was planned for)."""
    batching = batching or batch_profile_for(graph.model.sha256)
    planned = {c.name: c for c in deployment.classes}
    batches = {s.node: s.batch_size for s in deployment.shared}
    waits = {s.batch_wait_s for s in deployment.shared}
    problems = [
        f"class {c.name!r} is not in the plan" for c in fleet.classes if c.name not in planned
    ]
    problems += [
        f"shared node {k!r} is not in the plan" for k in fleet.shared_names if k not in batches
    ]
    if len(waits) > 1:
        problems.append(f"the shared nodes' batch_wait_s differ ({sorted(waits)}); give one")
    blocks = set(graph.block_names)
    for c in fleet.classes:
        if c.name in planned and set(planned[c.name].assignment) != blocks:
            problems.append(f"the plan of class {c.name!r} does not assign this model's blocks")
    if problems:
        raise InputError(
            "; ".join(problems),
            file=deployment.source,
            fix="plan this fleet and model with `qsplit fleet plan`, then pass that file",
        )
    candidates = {
        c.name: (
            planned_candidate(
                fleet, c.name, graph, profiles, batching, planned[c.name].assignment, "planned"
            ),
        )
        for c in fleet.classes
    }
    problem = FleetProblem(
        fleet,
        candidates,
        utilisation_max=utilisation_max,
        batch_wait_s=waits.pop() if waits else BATCH_WAIT_S,
    )
    choice = Choice({c.name: 0 for c in fleet.classes}, {k: batches[k] for k in fleet.shared_names})
    return problem, choice
