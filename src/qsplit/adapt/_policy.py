"""When to re-plan and switch: the policy, and the record of each decision."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from qsplit.errors import InputError

DecisionKind = Literal["switch", "held", "failover", "node-back", "retired"]


@dataclass(frozen=True)
class AdaptPolicy:
    """How eagerly an adaptive session re-plans (docs/adapt.md).

    Costs are compared in the planner's own terms: a plan's cost is ``w_latency·T/T_fresh +
    w_energy·E/E_fresh`` under the observed links and node speeds, where ``T_fresh``, ``E_fresh``
    are a fresh plan's; the fresh plan's cost is the sum of the weights.
    """

    margin: float = 0.2
    """Switch when the running plan costs more than the fresh one by more than this fraction."""
    hysteresis: float = 0.1
    """Extra fraction needed to switch back to the plan last switched away from, so a change
    near the margin cannot make two plans alternate."""
    min_interval_s: float = 2.0
    """Least time between two switches (a failover is not held back by it)."""
    check_interval_s: float = 0.5
    """How often the observed costs are re-planned (and down nodes probed)."""
    min_samples: int = 3
    """Transfers a link (or runs a node) needs before its estimate replaces the nominal one."""
    stale_s: float | None = 30.0
    """An estimate not refreshed for this long gives way to the nominal link or speed again, so
    a link the running plan stopped using is tried again once it may have recovered; ``None``
    keeps every estimate for good."""
    shared_uplink: bool = True
    """Slow a node's unobserved links by the factor its observed links slowed down by (they
    share its access network); ``False`` keeps them nominal until observed."""
    solve_time_limit_s: float = 5.0
    """Time limit of one re-plan's solves."""
    max_attempts: int = 3
    """Tries of one request across failovers before its error is reported."""

    def __post_init__(self) -> None:
        checks = {
            "margin": self.margin >= 0,
            "hysteresis": self.hysteresis >= 0,
            "min_interval_s": self.min_interval_s >= 0,
            "check_interval_s": self.check_interval_s > 0,
            "solve_time_limit_s": self.solve_time_limit_s > 0,
            "stale_s": self.stale_s is None or self.stale_s > 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or (value is not None and not math.isfinite(value)):
                raise InputError(
                    f"adapt policy: {name} = {value} is out of range",
                    field=name,
                    fix="give a finite number ≥ 0 (intervals and time limits > 0)",
                )
        if self.min_samples < 1 or self.max_attempts < 1:
            raise InputError(
                "adapt policy: min_samples and max_attempts must be at least 1",
                field="min_samples" if self.min_samples < 1 else "max_attempts",
                fix="e.g. 3",
            )


@dataclass(frozen=True)
class Decision:
    """One thing the adaptive session decided, with the costs that made it."""

    at: float
    """``time.time()``."""
    kind: DecisionKind
    """``switch`` (to a better plan), ``held`` (a better plan waits for ``min_interval_s``),
    ``failover`` (a node stopped answering), ``node-back`` (it answers again), ``retired`` (an
    old plan's requests drained and its components were undeployed)."""
    from_plan: str | None
    to_plan: str | None
    running_cost: float | None = None
    """The running plan's cost relative to the fresh plan's (1.0: as good), ``inf`` when it
    cannot run any more."""
    running_latency_s: float | None = None
    fresh_latency_s: float | None = None
    node: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "from_plan": self.from_plan,
            "to_plan": self.to_plan,
            "running_cost": _finite(self.running_cost),
            "running_latency_s": _finite(self.running_latency_s),
            "fresh_latency_s": self.fresh_latency_s,
            "node": self.node,
            "reason": self.reason,
        }


def _finite(value: float | None) -> float | str | None:
    """JSON has no infinity: a plan that cannot run is written as ``"inf"``."""
    return "inf" if value is not None and math.isinf(value) else value
