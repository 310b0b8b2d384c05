"""Where a fleet node's batches run: in the node's own replica, or on a Serve deployment of
worker replicas, a fixed ``c`` or autoscaled by Serve up to ``c``. Plain values (no Ray).

Whatever runs them, the node's batches form in its front replica and wait for one of its ``c``
slots there (one FIFO queue, as the fleet model prices); this only says what a slot's batch
runs on (docs/serve.md, *Serving a fleet*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from qsplit.fleet import AutoscalePolicy, policy_problems, refuse_problems

Mode = Literal["in-process", "fixed", "autoscale"]
MODES: tuple[Mode, ...] = ("in-process", "fixed", "autoscale")

WORKERS = "-workers"
"""Suffix of a node's worker deployment's name (the front is named after the node)."""

_DEFAULT = AutoscalePolicy()
"""Where the autoscaling defaults live: the simulation prices the policy Serve is given."""


@dataclass(frozen=True)
class NodeScaling:
    """How every shared node of a fleet run runs its batches.

    ``in-process`` (default): in the node's replica, one thread per slot — the cheapest on one
    host, and what the accuracy benchmarks use. ``fixed``: on ``c`` worker replicas (the node's
    planned replicas), one batch each at a time. ``autoscale``: on worker replicas that Serve
    scales between :attr:`min_replicas` and ``c``, aiming at one ongoing batch per replica; the
    delays are Serve's ``autoscaling_config`` fields, short by default so that a run of minutes
    shows scaling (Serve's own defaults are 30 s up, 600 s down). :attr:`policy` is the same
    numbers for :func:`qsplit.fleet.simulate`, which prices them."""

    mode: Mode = "in-process"
    min_replicas: int = _DEFAULT.min_replicas
    """Autoscale: worker replicas a node starts with and keeps (at least 1: a node at zero would
    start a process for its next batch, seconds no model prices)."""
    upscale_delay_s: float = _DEFAULT.upscale_delay_s
    """Autoscale: how long demand must exceed the replicas before Serve adds some."""
    downscale_delay_s: float = _DEFAULT.downscale_delay_s
    """Autoscale: how long demand must stay below the replicas before Serve removes some."""
    look_back_period_s: float = _DEFAULT.look_back_period_s
    """Autoscale: the window over which Serve averages the ongoing batches."""
    metrics_interval_s: float = _DEFAULT.metrics_interval_s
    """Autoscale: how often the front reports its ongoing batches to Serve's controller."""

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(("mode", f"is {self.mode!r}", f"use one of {', '.join(MODES)}"))
        problems += policy_problems(
            min_replicas=self.min_replicas,
            upscale_delay_s=self.upscale_delay_s,
            downscale_delay_s=self.downscale_delay_s,
            look_back_period_s=self.look_back_period_s,
            metrics_interval_s=self.metrics_interval_s,
        )
        refuse_problems(problems)

    @property
    def policy(self) -> AutoscalePolicy:
        """The autoscaling policy these settings give Serve, for the simulation (the time a
        worker takes to start is the host's: the default's)."""
        return AutoscalePolicy(
            min_replicas=self.min_replicas,
            upscale_delay_s=self.upscale_delay_s,
            downscale_delay_s=self.downscale_delay_s,
            look_back_period_s=self.look_back_period_s,
            metrics_interval_s=self.metrics_interval_s,
        )

    @property
    def workers(self) -> bool:
        """Whether batches run on a worker deployment (not in the node's replica)."""
        return self.mode != "in-process"

    def check(self, node: str, replicas: int) -> None:
        """Refuse settings that a node of ``replicas`` cannot take."""
        if self.mode == "autoscale":
            self.policy.check(node, replicas)

    def worker_options(self, replicas: int) -> dict[str, Any]:
        """Serve options of the worker deployment of a node of ``replicas`` (placement aside)."""
        if self.mode == "fixed":
            return {"num_replicas": replicas}
        return {"autoscaling_config": self.policy.serve_config(replicas)}
