"""The Plan: what runs where at which precision, what it is predicted to cost, and how it was found.

Predicted values are in physical units (seconds, joules), never normalised: they are
:func:`qsplit.plan.evaluate` of the plan's own assignment, so the runtime can put measurements
next to them directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsplit._jsonio import read_json, write_json
from qsplit.partition import Component
from qsplit.plan._cost import Evaluation
from qsplit.plan._problem import FP32_LINK, Bounds, LatencyModel, LinkMode

PLAN_KIND = "plan"
PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Predicted:
    """Headline cost of a plan or baseline for one inference."""

    latency_s: float
    energy_j: float
    device_energy_j: float
    noise: float

    @classmethod
    def of(cls, evaluation: Evaluation) -> Predicted:
        return cls(
            latency_s=evaluation.latency_s,
            energy_j=evaluation.energy_j,
            device_energy_j=evaluation.device_energy_j,
            noise=evaluation.noise,
        )


@dataclass(frozen=True)
class Payoff:
    """Single-objective optima and the other objective there (lexicographic), for min–max scaling.

    ``latency_max_s`` is the least latency among energy-optimal plans, ``energy_max_j`` the least
    energy among latency-optimal plans: the nadir of the two-objective Pareto front.
    """

    latency_min_s: float
    latency_max_s: float
    energy_min_j: float
    energy_max_j: float

    def objective(
        self, latency_s: float, energy_j: float, w_latency: float, w_energy: float
    ) -> float:
        """``w_T·T_norm + w_E·E_norm`` for a plan with these costs."""
        t_range = _range(self.latency_min_s, self.latency_max_s)
        e_range = _range(self.energy_min_j, self.energy_max_j)
        return (
            w_latency * (latency_s - self.latency_min_s) / t_range
            + w_energy * (energy_j - self.energy_min_j) / e_range
        )

    def scales(self) -> tuple[float, float]:
        """Divisors of latency and energy in the normalised objective."""
        return (
            _range(self.latency_min_s, self.latency_max_s),
            _range(self.energy_min_j, self.energy_max_j),
        )

    def utopian(self) -> bool:
        """Whether one plan has both the least latency and the least energy (a flat front)."""
        return _flat(self.latency_min_s, self.latency_max_s) and _flat(
            self.energy_min_j, self.energy_max_j
        )


def _flat(low: float, high: float) -> bool:
    return high - low <= 1e-12 * max(1.0, abs(high))


def _range(low: float, high: float) -> float:
    """Width used for min–max scaling; 1 when the objective is flat over the front."""
    return 1.0 if _flat(low, high) else high - low


@dataclass(frozen=True)
class SolverReport:
    """How the plan was found."""

    name: str
    status: str
    """``optimal``, or ``time-limit`` when the time limit stopped a solve, which kept the best
    plan it had found (files written before say ``feasible``)."""
    gap: float | None
    """Largest relative MIP gap of the solves (``None`` if the solver did not report one)."""
    solve_time_s: float
    """Total over all solves (payoff table and final)."""
    build_time_s: float
    solves: int
    time_limit_s: float | None = None
    """The limit on all solves together (``None``: none)."""


@dataclass(frozen=True)
class Plan:
    """A placement and quantization choice with its predicted cost."""

    model_sha256: str
    assignment: Mapping[str, str]
    """Block → node."""
    quantized: tuple[str, ...]
    """Blocks that run at int8, in graph order."""
    components: tuple[Component, ...]
    predicted: Predicted
    memory_bytes: Mapping[str, float]
    """Predicted memory per node (weights plus activations present)."""
    w_latency: float
    w_energy: float
    latency_model: LatencyModel
    bounds: Bounds
    solver: SolverReport
    payoff: Payoff | None = None
    """``None`` when only one objective had a weight (no scaling needed)."""
    objective: float | None = None
    """Normalised objective value of the plan (``None`` without a payoff table)."""
    baselines: Mapping[str, Predicted] = field(default_factory=dict)
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """The ``--input-shape`` overrides the model was analysed with: a model with dynamic input
    dimensions is deployed and run at exactly these shapes (empty: the model's own)."""
    link_precision: Mapping[str, str] = field(default_factory=dict)
    """Tensor → ``fp16`` or ``int8``: crosses every link at that precision
    (:func:`qsplit.quant.link_quantized_model`); absent tensors cross as computed."""
    link_codec: Mapping[str, str] = field(default_factory=dict)
    """Tensor → ``lz4`` or ``zstd``: compressed on every link it crosses, after its precision."""

    @property
    def link_modes(self) -> dict[str, LinkMode]:
        """Tensor → link mode, for :func:`qsplit.plan.evaluate` (fp32 ones left out)."""
        tensors = dict.fromkeys([*self.link_precision, *self.link_codec])
        return {
            t: LinkMode(self.link_precision.get(t, "fp32"), self.link_codec.get(t, "none"))
            for t in tensors
        }

    @staticmethod
    def split_links(links: Mapping[str, LinkMode]) -> tuple[dict[str, str], dict[str, str]]:
        """``link_precision`` and ``link_codec`` of these link modes."""
        return (
            {t: m.precision for t, m in links.items() if m.precision != FP32_LINK.precision},
            {t: m.codec for t, m in links.items() if m.codec != FP32_LINK.codec},
        )

    def to_dict(self) -> dict[str, Any]:
        payoff = self.payoff
        return {
            "model": {
                "sha256": self.model_sha256,
                "input_shapes": {name: list(shape) for name, shape in self.input_shapes.items()},
            },
            "assignment": dict(self.assignment),
            "quantized": list(self.quantized),
            "link_precision": dict(self.link_precision),
            "link_codec": dict(self.link_codec),
            "components": [
                {
                    "index": c.index,
                    "node": c.node,
                    "blocks": list(c.blocks),
                    "inputs": list(c.inputs),
                    "outputs": list(c.outputs),
                }
                for c in self.components
            ],
            "predicted": {**_predicted(self.predicted), "memory_bytes": dict(self.memory_bytes)},
            "objective": {
                "w_latency": self.w_latency,
                "w_energy": self.w_energy,
                "latency_model": self.latency_model,
                "value": self.objective,
                "payoff": None if payoff is None else vars(payoff).copy(),
            },
            "bounds": {
                "noise_max": self.bounds.noise_max,
                "device_energy_budget_j": self.bounds.device_energy_budget_j,
                "memory": self.bounds.memory,
            },
            "solver": vars(self.solver).copy(),
            "baselines": {name: _predicted(p) for name, p in self.baselines.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        objective, bounds, predicted = data["objective"], data["bounds"], data["predicted"]
        return cls(
            model_sha256=data["model"]["sha256"],
            assignment=dict(data["assignment"]),
            quantized=tuple(data["quantized"]),
            link_precision=dict(data.get("link_precision") or {}),
            link_codec=dict(data.get("link_codec") or {}),
            components=tuple(
                Component(
                    index=int(c["index"]),
                    node=c["node"],
                    blocks=tuple(c["blocks"]),
                    inputs=tuple(c["inputs"]),
                    outputs=tuple(c["outputs"]),
                )
                for c in data["components"]
            ),
            predicted=_predicted_from(predicted),
            memory_bytes=dict(predicted.get("memory_bytes", {})),
            w_latency=float(objective["w_latency"]),
            w_energy=float(objective["w_energy"]),
            latency_model=objective["latency_model"],
            bounds=Bounds(
                noise_max=bounds["noise_max"],
                device_energy_budget_j=bounds["device_energy_budget_j"],
                memory=bool(bounds["memory"]),
            ),
            solver=SolverReport(**data["solver"]),
            payoff=None if objective["payoff"] is None else Payoff(**objective["payoff"]),
            objective=objective["value"],
            baselines={n: _predicted_from(p) for n, p in data.get("baselines", {}).items()},
            input_shapes={
                str(name): tuple(int(d) for d in shape)
                for name, shape in data["model"].get("input_shapes", {}).items()
            },
        )

    def save(self, path: str | Path) -> Path:
        return write_json(path, PLAN_KIND, PLAN_SCHEMA_VERSION, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        return cls.from_dict(read_json(path, PLAN_KIND, (PLAN_SCHEMA_VERSION,)))


def _predicted(p: Predicted) -> dict[str, float]:
    return {
        "latency_s": p.latency_s,
        "energy_j": p.energy_j,
        "device_energy_j": p.device_energy_j,
        "noise": p.noise,
    }


def _predicted_from(data: Mapping[str, Any]) -> Predicted:
    return Predicted(
        latency_s=float(data["latency_s"]),
        energy_j=float(data["energy_j"]),
        device_energy_j=float(data["device_energy_j"]),
        noise=float(data["noise"]),
    )
