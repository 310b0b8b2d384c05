"""A fleet plan served on Ray: every shared component once, device classes as Ray actors.

Work in progress: the signature is final, the body follows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from qsplit.fleet import BatchProfile, Fleet, FleetDeployment
from qsplit.profile import ComputeProfile
from qsplit.serve._measure import FleetMeasurement


def run_fleet(
    deployment: FleetDeployment,
    fleet: Fleet,
    *,
    model: str | Path,
    duration_s: float,
    warmup_s: float = 5.0,
    devices: Mapping[str, int] | None = None,
    seed: int = 0,
    label: str = "fleet",
    profiles: Mapping[str, ComputeProfile] | None = None,
    batching: BatchProfile | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    quantized: Collection[str] = (),
    calibration: Any = None,
    address: str | None = None,
) -> FleetMeasurement:
    """Run ``deployment`` (a fleet plan, or a baseline as ``FleetPlan.deployment(name)``) on
    Ray with emulated devices, nodes and links, and measure it.

    ``fleet`` (with its ``infra``) gives the classes' links and speeds; ``devices`` the
    emulated devices per class (default: the plan's counts); requests sent in the ``duration_s``
    after ``warmup_s`` are measured. ``profiles`` (node or class → compute profile; default:
    :func:`qsplit.fleet.fleet_profiles`) and ``batching`` set the emulated speeds;
    ``input_shapes`` runs the model at another input size. Starts Ray once; use
    :class:`FleetServing` to run several deployments on one Ray.
    """
    raise NotImplementedError("fleet serving is being built on branch fleetray")
