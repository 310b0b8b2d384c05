"""Where a fleet node's batches run: in the node's own replica, or on a Serve deployment of
worker replicas, a fixed ``c`` or autoscaled by Serve up to ``c``. Plain values (no Ray).

Whatever runs them, the node's batches form in its front replica and wait for one of its ``c``
slots there (one FIFO queue, as the fleet model prices); this only says what a slot's batch
runs on (docs/serve.md, *Serving a fleet*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from qsplit.errors import InputError

Mode = Literal["in-process", "fixed", "autoscale"]
MODES: tuple[Mode, ...] = ("in-process", "fixed", "autoscale")

WORKERS = "-workers"
"""Suffix of a node's worker deployment's name (the front is named after the node)."""


@dataclass(frozen=True)
class NodeScaling:
    """How every shared node of a fleet run runs its batches.

    ``in-process`` (default): in the node's replica, one thread per slot — the cheapest on one
    host, and what the accuracy benchmarks use. ``fixed``: on ``c`` worker replicas (the node's
    planned replicas), one batch each at a time. ``autoscale``: on worker replicas that Serve
    scales between :attr:`min_replicas` and ``c``, aiming at one ongoing batch per replica; the
    delays are Serve's ``autoscaling_config`` fields, short by default so that a run of minutes
    shows scaling (Serve's own defaults are 30 s up, 600 s down)."""

    mode: Mode = "in-process"
    min_replicas: int = 1
    """Autoscale: worker replicas a node starts with and keeps (at least 1: a node at zero would
    start a process for its next batch, seconds no model prices)."""
    upscale_delay_s: float = 2.0
    """Autoscale: how long demand must exceed the replicas before Serve adds some."""
    downscale_delay_s: float = 10.0
    """Autoscale: how long demand must stay below the replicas before Serve removes some."""
    look_back_period_s: float = 2.0
    """Autoscale: the window over which Serve averages the ongoing batches."""
    metrics_interval_s: float = 0.5
    """Autoscale: how often the front reports its ongoing batches to Serve's controller."""

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(("mode", f"is {self.mode!r}", f"use one of {', '.join(MODES)}"))
        if self.min_replicas < 1:
            problems.append(("min_replicas", "is below 1", "keep at least one worker replica"))
        for name in ("upscale_delay_s", "downscale_delay_s"):
            if getattr(self, name) < 0:
                problems.append((name, "is negative", "give 0 or more seconds"))
        for name in ("look_back_period_s", "metrics_interval_s"):
            if getattr(self, name) <= 0:
                problems.append((name, "is not positive", "give more than 0 seconds"))
        if problems:
            raise InputError(
                "; ".join(f"{field} {problem}" for field, problem, _ in problems),
                field=", ".join(field for field, _, _ in problems),
                fix="; ".join(fix for _, _, fix in problems),
            )

    @property
    def workers(self) -> bool:
        """Whether batches run on a worker deployment (not in the node's replica)."""
        return self.mode != "in-process"

    def check(self, node: str, replicas: int) -> None:
        """Refuse settings that a node of ``replicas`` cannot take."""
        if self.mode == "autoscale" and self.min_replicas > replicas:
            raise InputError(
                f"min_replicas {self.min_replicas} is more than node {node!r}'s {replicas} "
                "replicas (the autoscaling maximum)",
                field="min_replicas",
                fix=f"give at most {replicas}, or plan the node with more replicas",
            )

    def worker_options(self, replicas: int) -> dict[str, Any]:
        """Serve options of the worker deployment of a node of ``replicas`` (placement aside)."""
        if self.mode == "fixed":
            return {"num_replicas": replicas}
        return {
            "autoscaling_config": {
                "min_replicas": self.min_replicas,
                "initial_replicas": self.min_replicas,
                "max_replicas": replicas,
                # One worker per busy server: a slot's batch in flight is one ongoing request.
                "target_ongoing_requests": 1,
                "upscale_delay_s": self.upscale_delay_s,
                "downscale_delay_s": self.downscale_delay_s,
                "look_back_period_s": self.look_back_period_s,
                "metrics_interval_s": self.metrics_interval_s,
            }
        }
