"""Planning: where each block runs and which blocks are quantized, priced by one cost model."""

from qsplit.plan._bandwidth_table import BandwidthTable, bandwidth_table, plan_key
from qsplit.plan._baselines import Baseline, baseline_plans, compute_baselines
from qsplit.plan._cost import (
    QUANT_PARAMS_BYTES,
    Evaluation,
    Violation,
    decode_s,
    encode_s,
    energy_per_node,
    evaluate,
    overhead_s,
    sent_bytes,
    violations,
    weight_bytes,
    wire_bytes,
)
from qsplit.plan._load import load_problem
from qsplit.plan._pareto import ParetoFront, ParetoPoint, pareto_front
from qsplit.plan._planfile import Payoff, Plan, Predicted, SolverReport
from qsplit.plan._planner import Start, plan
from qsplit.plan._problem import (
    FP32_LINK,
    LATENCY_MODELS,
    LINK_OPTIONS,
    PRECISIONS,
    Bounds,
    LatencyModel,
    LinkMode,
    PlanningProblem,
    Precision,
)
from qsplit.plan._solver import SOLVERS, TIME_LIMIT_S
from qsplit.plan._warm import WarmModel

__all__ = [
    "FP32_LINK",
    "LATENCY_MODELS",
    "LINK_OPTIONS",
    "PRECISIONS",
    "QUANT_PARAMS_BYTES",
    "SOLVERS",
    "TIME_LIMIT_S",
    "BandwidthTable",
    "Baseline",
    "Bounds",
    "Evaluation",
    "LatencyModel",
    "LinkMode",
    "ParetoFront",
    "ParetoPoint",
    "Payoff",
    "Plan",
    "PlanningProblem",
    "Precision",
    "Predicted",
    "SolverReport",
    "Start",
    "Violation",
    "WarmModel",
    "bandwidth_table",
    "baseline_plans",
    "compute_baselines",
    "decode_s",
    "encode_s",
    "energy_per_node",
    "evaluate",
    "load_problem",
    "overhead_s",
    "pareto_front",
    "plan",
    "plan_key",
    "sent_bytes",
    "violations",
    "weight_bytes",
    "wire_bytes",
]
