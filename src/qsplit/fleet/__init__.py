"""Fleets: device classes sharing edge and cloud nodes, planned jointly under contention
(queueing and cross-device batching at the shared nodes), and simulated to large device counts."""

from qsplit.fleet._autoscale import AutoscalePolicy, Decision, decide
from qsplit.fleet._batching import NO_BATCHING, BatchProfile, batch_profile_for, load_batch_profile
from qsplit.fleet._candidates import ALONE, CandidateSettings, class_candidates
from qsplit.fleet._load import fleet_from_dict, load_fleet, validate_fleet
from qsplit.fleet._milp import solve_fleet
from qsplit.fleet._model import (
    BATCH_SIZES,
    BATCH_WAIT_S,
    OBJECTIVES,
    UTILISATION_MAX,
    Candidate,
    Choice,
    ClassOutcome,
    FleetProblem,
    Group,
    NodeLoad,
    Objective,
    Outcome,
    Work,
    assess,
    planning_value,
    utilisation,
)
from qsplit.fleet._planfile import (
    ClassDeployment,
    FleetDeployment,
    HostedComponent,
    SharedDeployment,
    load_fleet_plan,
)
from qsplit.fleet._planner import (
    BASELINES,
    FleetPlan,
    baseline_choices,
    deployed_choice,
    fleet_deployment,
    fleet_profiles,
    plan_fleet,
)
from qsplit.fleet._pricing import (
    AUTOSCALE_TOLERANCE,
    AutoscalePricing,
    NodeAdvice,
    price_autoscaling,
)
from qsplit.fleet._queueing import erlang_c, waiting_requests
from qsplit.fleet._simulate import (
    Projection,
    ProjectionPoint,
    Simulated,
    plot_projection,
    project,
    simulate,
)
from qsplit.fleet._spec import DeviceClass, DeviceRuntime, Fleet, SharedNode

__all__ = [
    "ALONE",
    "AUTOSCALE_TOLERANCE",
    "BASELINES",
    "BATCH_SIZES",
    "BATCH_WAIT_S",
    "NO_BATCHING",
    "OBJECTIVES",
    "UTILISATION_MAX",
    "AutoscalePolicy",
    "AutoscalePricing",
    "BatchProfile",
    "Candidate",
    "CandidateSettings",
    "Choice",
    "ClassDeployment",
    "ClassOutcome",
    "Decision",
    "DeviceClass",
    "DeviceRuntime",
    "Fleet",
    "FleetDeployment",
    "FleetPlan",
    "FleetProblem",
    "Group",
    "HostedComponent",
    "NodeAdvice",
    "NodeLoad",
    "Objective",
    "Outcome",
    "Projection",
    "ProjectionPoint",
    "SharedDeployment",
    "SharedNode",
    "Simulated",
    "Work",
    "assess",
    "baseline_choices",
    "batch_profile_for",
    "class_candidates",
    "decide",
    "deployed_choice",
    "erlang_c",
    "fleet_deployment",
    "fleet_from_dict",
    "fleet_profiles",
    "load_batch_profile",
    "load_fleet",
    "load_fleet_plan",
    "plan_fleet",
    "planning_value",
    "plot_projection",
    "price_autoscaling",
    "project",
    "simulate",
    "solve_fleet",
    "utilisation",
    "validate_fleet",
    "waiting_requests",
]
