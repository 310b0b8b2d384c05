"""Planning: where each block runs and which blocks are quantized, priced by one cost model."""

from qsplit.plan._baselines import Baseline, baseline_plans, compute_baselines
from qsplit.plan._cost import (
    QUANT_PARAMS_BYTES,
    Evaluation,
    Violation,
    energy_per_node,
    evaluate,
    overhead_s,
    violations,
    weight_bytes,
    wire_bytes,
)
from qsplit.plan._load import load_problem
from qsplit.plan._pareto import ParetoFront, ParetoPoint, pareto_front
from qsplit.plan._planfile import Payoff, Plan, Predicted, SolverReport
from qsplit.plan._planner import plan
from qsplit.plan._problem import (
    LATENCY_MODELS,
    PRECISIONS,
    Bounds,
    LatencyModel,
    PlanningProblem,
    Precision,
)
from qsplit.plan._solver import SOLVERS, TIME_LIMIT_S

__all__ = [
    "LATENCY_MODELS",
    "PRECISIONS",
    "QUANT_PARAMS_BYTES",
    "SOLVERS",
    "TIME_LIMIT_S",
    "Baseline",
    "Bounds",
    "Evaluation",
    "LatencyModel",
    "ParetoFront",
    "ParetoPoint",
    "Payoff",
    "Plan",
    "PlanningProblem",
    "Precision",
    "Predicted",
    "SolverReport",
    "Violation",
    "baseline_plans",
    "compute_baselines",
    "energy_per_node",
    "evaluate",
    "load_problem",
    "overhead_s",
    "pareto_front",
    "plan",
    "violations",
    "weight_bytes",
    "wire_bytes",
]
