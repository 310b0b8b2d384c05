"""Emulating a node of absolute speed on this host.

A node is described by what it is: its time for one **reference workload** (the infrastructure
file's ``reference_time``), never by how much slower it is than whatever machine runs the
emulation. To emulate it here, this host's time for the same workload is measured and every
compute time measured here is scaled by ``padding factor = node time / host time``. The testbed
(padding each component run), the agents' profiles and ``qsplit profile --infra`` all get their
factor from :func:`padding_factor`, so a plan made on one host means the same on another.

The reference workload is the bundled YOLO11n (640×640, fp32, batch 1) in ONNX Runtime on the
CPU with the session settings agents run components with (one intra-op thread, no spinning,
``ORT_ENABLE_ALL``). It is the model the demo splits, so its blocks scale with the factor as the
whole does, and it is the model edge boards publish ONNX Runtime timings for, so a real board's
figure can be written down as it was published (docs/planner.md names sources).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx

from qsplit.errors import InputError
from qsplit.infra import Infra
from qsplit.profile._timing import SessionSettings, Statistic, Summary, make_session, time_run

REFERENCE_WORKLOAD = "the bundled YOLO11n, 1x3x640x640 fp32, batch 1, in ONNX Runtime on the CPU"
REFERENCE_RUNS = 7
"""Timed runs of the reference workload per host measurement (after one warm-up run)."""
FACTOR_TOLERANCE = 0.05
"""A host up to 5 % slower than a node still emulates it (at factor 1, i.e. up to 5 % slow):
two measurements of the same machine differ by a few percent, and refusing a host as fast as
the node over that noise would help nobody."""


@dataclass(frozen=True)
class HostReference:
    """This host's time for the reference workload, as the emulation uses it."""

    time_s: float
    """The ``statistic`` of the runs: what node times are divided by."""
    statistic: Statistic
    median_s: float
    min_s: float
    runs: int
    threads: int

    def describe(self) -> str:
        """How ``time_s`` was obtained, for messages."""
        return f"{self.statistic} of {self.runs} runs, {self.threads} thread(s)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostReference:
        return cls(**data)


def measure_host(
    statistic: Statistic, *, threads: int = 1, runs: int = REFERENCE_RUNS
) -> HostReference:
    """Time the reference workload here with the agents' session settings.

    ``statistic`` must be the one the emulated node's own times are summarised by (the
    testbed's agents use the minimum, ``qsplit profile`` the median), so that a block's time
    and the host's reference are the same kind of number and their ratio is the node's.
    """
    from qsplit.assets import bundled_model_path

    model = onnx.load(bundled_model_path("yolo11n"))
    session = make_session(model, SessionSettings(threads=threads))
    (spec,) = session.get_inputs()
    feeds = {spec.name: np.random.default_rng(0).random(spec.shape, dtype=np.float32)}
    session.run(None, feeds)
    summary = Summary.of([time_run(session, feeds) for _ in range(runs)])
    return HostReference(
        time_s=summary.value(statistic),
        statistic=statistic,
        median_s=summary.median_s,
        min_s=summary.min_s,
        runs=runs,
        threads=threads,
    )


def padding_factor(infra: Infra, node: str, host: HostReference) -> float:
    """How many times its time here each compute run of ``node`` is stretched to.

    ``reference_time / host.time_s``, raised to 1 within :data:`FACTOR_TOLERANCE`. A host
    slower than that cannot emulate the node (waiting cannot make a run faster), and a node
    without ``reference_time`` has nothing to emulate: both are refused with what to do.
    """
    field = f"nodes[{infra.node_names.index(infra.node(node).name)}].reference_time"
    reference_s = infra.node(node).reference_time_s
    if reference_s is None:
        raise InputError(
            f"node {node!r} has no reference_time, so it cannot be emulated",
            file=infra.source,
            field=field,
            fix="give its time for the reference workload, e.g. `reference_time: 425ms` "
            "(docs/planner.md)",
        )
    factor = reference_s / host.time_s
    if factor < 1.0 - FACTOR_TOLERANCE:
        raise InputError(
            f"this host is too slow to emulate node {node!r}: the node's reference time is "
            f"{reference_s * 1e3:.0f} ms, this host takes {host.time_s * 1e3:.0f} ms "
            f"for {REFERENCE_WORKLOAD} ({host.describe()})",
            file=infra.source,
            field=field,
            fix=f"run on a host at least as fast as the node, or describe a slower node "
            f"(reference_time ≥ {host.time_s * 1e3:.0f}ms)",
        )
    return max(1.0, factor)


def node_factors(infra: Infra, host: HostReference) -> dict[str, float]:
    """The padding factor of every node of ``infra``, for an emulation of all of them."""
    return {name: padding_factor(infra, name, host) for name in infra.node_names}
