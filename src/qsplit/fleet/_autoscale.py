"""Ray Serve's default autoscaling policy as a value and a pure step, for the simulation.

A shared node whose batches run on autoscaled worker replicas (docs/serve.md, *Serving a
fleet*) has between ``min_replicas`` and its planned ``c`` servers, as Serve's controller moves
them; the fleet model prices ``c`` always. :func:`qsplit.fleet.simulate` prices the difference
by moving a node's servers as Serve would, with :func:`decide` written after Ray Serve 2.60's
``replica_queue_length_autoscaling_policy`` and ``_apply_default_params``
(``ray/serve/autoscaling_policy.py``) and the metrics they read
(``ray/serve/_private/autoscaling_state.py``, ``replica.py``, ``router.py``):

- every ``record_interval_s`` (``min(0.2 · look_back_period_s, metrics_interval_s)``) the
  deployment's handle records its ongoing requests, running and queued — for a node's workers,
  its batches in flight, at most the front's ``c`` slots;
- the controller averages what it has over the last ``look_back_period_s`` (time-weighted);
  ``desired = average / target_ongoing_requests``;
- smoothing: ``ceil(current + factor · (desired − current))`` with the up- or downscaling factor
  (``current``: the running replicas), one step down where the factor would leave it stuck;
- delays: a change is made only once the decision has pointed the same way (up, or down) for
  ``upscale_delay_s`` or ``downscale_delay_s`` of wall-clock time since its first such decision;
  a decision the other way, or for no change, restarts the clock;
- bounds: the result is held within ``[min_replicas, max_replicas]``.

The controller decides every 0.1 s, but what it reads changes only when a report arrives (every
``metrics_interval_s``), so the simulation decides once per report: the delays, measured in
wall-clock time, are kept to within one report interval.

This module does not import Ray (the fleet package never does); ``qsplit.serve.NodeScaling``
builds Serve's ``autoscaling_config`` from :meth:`AutoscalePolicy.serve_config`, so the served
and the simulated autoscaler take their numbers from one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from qsplit.errors import InputError

RECORD_INTERVAL_FACTOR = 0.2
"""Serve records ongoing requests every this fraction of the look-back period
(``RAY_SERVE_AUTOSCALING_METRIC_RECORD_INTERVAL_FACTOR``), or every report, if more often."""

REPLICA_START_S = 6.0
"""Seconds from Serve's decision to add a worker to the worker serving: on this 2-core VM the
cloud's third worker ran 8.4 s after devices joined (docs/BENCHMARKS.md, *Fleet nodes on Serve
worker replicas*), of which the 2 s upscale delay and about half a second for the look-back
average to cross 2 come before the decision."""


@dataclass(frozen=True)
class AutoscalePolicy:
    """How Serve autoscales a node's worker replicas (the maximum is the node's planned
    replicas); the defaults are qsplit's (``NodeScaling("autoscale")``), short so that a run of
    minutes shows scaling (Serve's own are 30 s up, 600 s down, 30 s look-back)."""

    min_replicas: int = 1
    """Workers a node starts with and keeps (at least 1: a node at zero would start a process
    for its next batch, seconds no model prices)."""
    target_ongoing_requests: float = 1.0
    """Ongoing batches per worker Serve aims at: 1, one worker per busy server."""
    upscale_delay_s: float = 2.0
    """How long demand must exceed the replicas before Serve adds some."""
    downscale_delay_s: float = 10.0
    """How long demand must stay below the replicas before Serve removes some."""
    look_back_period_s: float = 2.0
    """The window over which Serve averages the ongoing batches."""
    metrics_interval_s: float = 0.5
    """How often the ongoing batches are reported to Serve's controller."""
    upscaling_factor: float = 1.0
    """Fraction of the gap between desired and running replicas closed by a scale-up."""
    downscaling_factor: float = 1.0
    """Fraction of that gap closed by a scale-down."""
    replica_start_s: float = REPLICA_START_S
    """Seconds from the decision to add a worker until it serves (a process starting and
    loading its runners): this host's, not Serve's."""

    def __post_init__(self) -> None:
        refuse_problems(policy_problems(**{f.name: getattr(self, f.name) for f in fields(self)}))

    @property
    def record_interval_s(self) -> float:
        """How often the ongoing batches are recorded."""
        return min(RECORD_INTERVAL_FACTOR * self.look_back_period_s, self.metrics_interval_s)

    def check(self, node: str, replicas: int) -> None:
        """Refuse a minimum above a node's ``replicas`` (the autoscaling maximum)."""
        if self.min_replicas > replicas:
            raise InputError(
                f"min_replicas {self.min_replicas} is more than node {node!r}'s {replicas} "
                "replicas (the autoscaling maximum)",
                field="min_replicas",
                fix=f"give at most {replicas}, or plan the node with more replicas",
            )

    def serve_config(self, max_replicas: int) -> dict[str, Any]:
        """Serve's ``autoscaling_config`` for a node of ``max_replicas`` (plain values)."""
        return {
            "min_replicas": self.min_replicas,
            "initial_replicas": self.min_replicas,
            "max_replicas": max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
            "look_back_period_s": self.look_back_period_s,
            "metrics_interval_s": self.metrics_interval_s,
            "upscaling_factor": self.upscaling_factor,
            "downscaling_factor": self.downscaling_factor,
        }


def policy_problems(**values: float) -> list[tuple[str, str, str]]:
    """Every problem of the given policy fields, as ``(field, problem, fix)``; shared with
    ``qsplit.serve.NodeScaling``, which holds some of them."""
    problems = []
    if values.get("min_replicas", 1) < 1:
        problems.append(("min_replicas", "is below 1", "keep at least one worker replica"))
    for name in ("upscale_delay_s", "downscale_delay_s", "replica_start_s"):
        if values.get(name, 0) < 0:
            problems.append((name, "is negative", "give 0 or more seconds"))
    for name in (
        "target_ongoing_requests",
        "look_back_period_s",
        "metrics_interval_s",
        "upscaling_factor",
        "downscaling_factor",
    ):
        if not values.get(name, 1) > 0:
            problems.append((name, "is not positive", "give more than 0"))
    return problems


def refuse_problems(problems: list[tuple[str, str, str]]) -> None:
    """One :class:`InputError` naming every field of ``problems`` and its fix; none: return."""
    if problems:
        raise InputError(
            "; ".join(f"{field} {problem}" for field, problem, _ in problems),
            field=", ".join(field for field, _, _ in problems),
            fix="; ".join(fix for _, _, fix in problems),
        )


@dataclass(frozen=True)
class Decision:
    """The controller's state for one deployment between two decisions."""

    target: int
    """Replicas Serve is scaling to."""
    direction: int = 0
    """+1 while decisions point up, −1 while they point down, 0 otherwise."""
    since_s: float = math.nan
    """When decisions started pointing that way."""


def decide(
    policy: AutoscalePolicy,
    state: Decision,
    *,
    now_s: float,
    ongoing: float,
    running: int,
    max_replicas: int,
) -> Decision:
    """Serve's next decision at ``now_s``, given the ongoing requests averaged over the
    look-back and the ``running`` replicas (not those starting or stopping)."""
    if running == 0:
        desired = state.target
    else:
        raw = ongoing / policy.target_ongoing_requests
        factor = policy.upscaling_factor if raw > running else policy.downscaling_factor
        desired = math.ceil(running + factor * (raw - running))
        if math.ceil(raw) < running and desired == running:
            desired -= 1
    direction = (desired > state.target) - (desired < state.target)
    since = state.since_s if direction == state.direction else now_s
    delay = policy.upscale_delay_s if direction > 0 else policy.downscale_delay_s
    if direction and now_s - since + 1e-9 < delay:
        return Decision(_bounded(policy, state.target, max_replicas), direction, since)
    return Decision(_bounded(policy, desired, max_replicas))


def _bounded(policy: AutoscalePolicy, replicas: int, max_replicas: int) -> int:
    """Serve bounds every decision, also one that keeps the target."""
    return min(max(replicas, policy.min_replicas), max_replicas)
