"""Planning: where each block runs and which blocks are quantized, priced by one cost model."""

from qsplit.plan._cost import (
    QUANT_PARAMS_BYTES,
    Evaluation,
    Violation,
    evaluate,
    violations,
    weight_bytes,
    wire_bytes,
)
from qsplit.plan._problem import (
    LATENCY_MODELS,
    PRECISIONS,
    Bounds,
    LatencyModel,
    PlanningProblem,
    Precision,
)

__all__ = [
    "LATENCY_MODELS",
    "PRECISIONS",
    "QUANT_PARAMS_BYTES",
    "Bounds",
    "Evaluation",
    "LatencyModel",
    "PlanningProblem",
    "Precision",
    "Violation",
    "evaluate",
    "violations",
    "weight_bytes",
    "wire_bytes",
]
