"""A per-bandwidth table of plans, the way QPART adapts: plan offline for a grid of uplink
bandwidths, then at run time pick the plan made for the observed bandwidth.

It is the baseline that qsplit's online re-planning is compared with (issue 15): the table
reacts to bandwidth at once and costs nothing to consult, but it knows only the grid, only the
uplink, and nothing of a node that got slower or died. Each grid point is planned by
:func:`qsplit.plan.plan` on the same problem with the uplink links set to that bandwidth, so a
table entry is exactly the plan qsplit would make at that bandwidth.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from qsplit.errors import InputError
from qsplit.plan._planfile import Plan
from qsplit.plan._planner import plan
from qsplit.plan._problem import PlanningProblem


@dataclass(frozen=True)
class BandwidthTable:
    """Plans by uplink bandwidth; :meth:`select` picks one for an observed bandwidth."""

    links: tuple[tuple[str, str], ...]
    """The directed links whose bandwidth the table is keyed by (all set to the grid value)."""
    bandwidths_bytes_per_s: tuple[float, ...]
    """The grid, ascending."""
    plans: tuple[Plan, ...]
    """``plans[i]`` was made with the links at ``bandwidths_bytes_per_s[i]``."""

    def select(self, observed_bytes_per_s: float) -> Plan:
        """The plan of the highest grid bandwidth not above ``observed_bytes_per_s`` (the
        lowest grid point's below the grid): a table errs on the side of a slower link, whose
        plan sends less, rather than planning for a rate the link does not give."""
        return self.plans[self.index(observed_bytes_per_s)]

    def index(self, observed_bytes_per_s: float) -> int:
        """The grid point :meth:`select` uses for ``observed_bytes_per_s``."""
        if not observed_bytes_per_s > 0:  # also NaN
            raise InputError(
                f"observed bandwidth {observed_bytes_per_s!r} is not a positive rate",
                fix="pass bytes per second measured on the uplink",
            )
        return max(0, bisect.bisect_right(self.bandwidths_bytes_per_s, observed_bytes_per_s) - 1)

    def distinct(self) -> dict[tuple[Any, ...], Plan]:
        """The table's different plans (placement and quantization), each once, keyed by
        :func:`plan_key`: what a runtime deploys ahead so that switching costs nothing."""
        return {plan_key(p): p for p in self.plans}


def plan_key(chosen: Plan) -> tuple[Any, ...]:
    """What makes two plans run the same: their placement and their quantized blocks."""
    return (tuple(sorted(chosen.assignment.items())), tuple(chosen.quantized))


def bandwidth_table(
    problem: PlanningProblem,
    bandwidths_bytes_per_s: Iterable[float],
    *,
    links: Sequence[tuple[str, str]] | None = None,
    **plan_options: Any,
) -> BandwidthTable:
    """Plan ``problem`` once per grid bandwidth, with every one of ``links`` (default: every
    link leaving the device, its uplinks) set to it; ``plan_options`` go to
    :func:`qsplit.plan.plan`. :class:`InputError` for an empty grid, a non-positive bandwidth
    or a link the infrastructure lacks."""
    grid = tuple(sorted(set(bandwidths_bytes_per_s)))
    if not grid or not all(math.isfinite(b) and b > 0 for b in grid):
        raise InputError(
            f"a bandwidth table needs positive, finite grid bandwidths, got {grid!r}",
            field="bandwidths_bytes_per_s",
            fix="give e.g. [0.5e6, 1e6, 2e6, 5e6, 10e6, 20e6] (bytes per second)",
        )
    infra = problem.infra
    keyed = tuple(links) if links is not None else _uplinks(problem)
    if not keyed:
        raise InputError(
            f"node {infra.device!r} has no link to key a bandwidth table by",
            field="links",
            fix="name the links, or plan with an infrastructure where the device has uplinks",
        )
    originals = [infra.link(source, target) for source, target in keyed]
    plans = tuple(
        plan(
            replace(
                problem,
                infra=infra.with_links(replace(lk, bandwidth_bytes_per_s=b) for lk in originals),
            ),
            **plan_options,
        )
        for b in grid
    )
    return BandwidthTable(keyed, grid, plans)


def _uplinks(problem: PlanningProblem) -> tuple[tuple[str, str], ...]:
    device = problem.infra.device
    return tuple((lk.source, lk.target) for lk in problem.infra.links if lk.source == device)
