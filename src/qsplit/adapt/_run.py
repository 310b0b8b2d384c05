"""A whole adaptive run as data: each request's time, latency and plan, and the switch points —
what a scenario plots (latency over time with the switches marked)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qsplit.adapt._policy import AdaptPolicy, Decision
from qsplit.adapt._replan import Candidate
from qsplit.adapt._session import AdaptiveSession, AdaptResult
from qsplit.infra import Infra
from qsplit.plan import PlanningProblem
from qsplit.runtime import Observed


@dataclass(frozen=True)
class RequestPoint:
    """One request of an adaptive run."""

    index: int
    at_s: float
    """When it was first submitted, in seconds since the run started."""
    latency_s: float
    """First submission to answer, failovers included."""
    plan_id: str
    """The plan that answered it."""
    attempts: int
    error: str | None
    hedged: bool = False
    """Also sent to a newer plan while in flight; ``plan_id`` is the one that answered first."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "at_s": self.at_s,
            "latency_s": self.latency_s,
            "plan": self.plan_id,
            "attempts": self.attempts,
            "error": self.error,
            "hedged": self.hedged,
        }


@dataclass(frozen=True)
class AdaptiveRun:
    """What :func:`run_adaptive` returns."""

    started_at: float
    """``time.time()`` at the start; decisions' ``at`` minus this is their time in the run."""
    first_plan: str
    plans: Mapping[str, Candidate]
    """Every plan of the run by id: where its blocks ran."""
    requests: tuple[RequestPoint, ...]
    decisions: tuple[Decision, ...]
    observed: Observed
    """The estimates at the end of the run."""

    @property
    def switches(self) -> tuple[Decision, ...]:
        """The points where new requests changed plan (switches and failovers)."""
        return tuple(
            d
            for d in self.decisions
            if d.kind == "switch" or (d.kind == "failover" and d.to_plan != d.from_plan)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_plan": self.first_plan,
            "plans": {
                plan_id: {"assignment": dict(c.assignment), "quantized": list(c.quantized)}
                for plan_id, c in self.plans.items()
            },
            "requests": [r.to_dict() for r in self.requests],
            "decisions": [{**d.to_dict(), "at_s": d.at - self.started_at} for d in self.decisions],
            "observed": self.observed.to_dict(),
        }


def run_adaptive(
    problem: PlanningProblem,
    start: Candidate,
    model: str | Path,
    feeds: Iterable[Mapping[str, np.ndarray]],
    *,
    infra: Infra | None = None,
    policy: AdaptPolicy | None = None,
    max_in_flight: int = 1,
    timeout_s: float | None = None,
    on_result: Callable[[AdaptResult], None] | None = None,
    **session_options: Any,
) -> AdaptiveRun:
    """Run ``feeds`` through an :class:`AdaptiveSession` starting on ``start``; ``on_result``
    sees each result as it comes (its outputs, e.g. to compare them). ``session_options`` go
    to :class:`AdaptiveSession` (``token``, ``timeout_s``, ``curve_key``, …)."""
    with AdaptiveSession(
        problem, start, model, infra=infra, policy=policy, **session_options
    ) as adaptive:
        first_plan = adaptive.plan_id
        started = time.time()
        points = []
        for result in adaptive.stream(feeds, max_in_flight=max_in_flight, timeout_s=timeout_s):
            error = result.result.error
            points.append(
                RequestPoint(
                    index=result.index,
                    at_s=result.submitted_at - started,
                    latency_s=result.latency_s,
                    plan_id=result.plan_id,
                    attempts=result.attempts,
                    error=None if error is None else str(error),
                    hedged=result.hedged,
                )
            )
            if on_result is not None:
                on_result(result)
        return AdaptiveRun(
            started_at=started,
            first_plan=first_plan,
            plans=dict(adaptive.plans),
            requests=tuple(points),
            decisions=tuple(adaptive.decisions),
            observed=adaptive.observed(),
        )
