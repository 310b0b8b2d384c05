"""Emulating a node of absolute speed on this host.

A node is described by what it is: its time for one **reference workload** (the infrastructure
file's ``reference_time``), never by how much slower it is than whatever machine runs the
emulation. To emulate it here, this host's time for the same workload is measured and every
compute time measured here is scaled by ``padding factor = node time / host time``. The testbed
(padding each component run), the agents' profiles and ``qsplit profile --infra`` all get their
factor from :func:`padding_factor`, so a plan made on one host means the same on another.

The reference workload is the bundled YOLO11n (640×640, fp32, batch 1) in ONNX Runtime on the
CPU. It is the model the demo splits, so its blocks scale with the factor as the whole does,
and it is the model edge boards publish ONNX Runtime timings for, so a real board's figure can
be written down as it was published (docs/planner.md names sources).

The host's time for it is measured the way profiles are: as the sum of its blocks' times, each
block timed alone (:func:`profile_compute`) with the session settings agents run components
with and summarised by the same statistic. Two reasons. A block's time and the host's are then
the same kind of number, so the profile of the reference model on any host sums to the node's
reference time, and plans cannot drift with how the host was measured. And 0.1-9 ms runs find
the quiet moments of a shared machine that a 120 ms run of the whole model rarely does: with
other jobs on the cores the minimum of 7 whole-model runs read 206 ms while the blocks' minima
summed to 145 ms (on a quiet machine the two agree within 1-4 %, docs/profiling.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from qsplit.errors import InputError
from qsplit.infra import Infra
from qsplit.profile._profiler import profile_compute
from qsplit.profile._timing import Statistic

REFERENCE_WORKLOAD = "the bundled YOLO11n, 1x3x640x640 fp32, batch 1, in ONNX Runtime on the CPU"
REFERENCE_RUNS = 20
"""Timed runs of each block of the reference model per host measurement (after a warm-up): as
many as a profile's blocks get by default, so the host's reference has the same chance as a
profile to catch the quiet moments of a loaded machine. With 7, a calibration taken during a
burst of load on the 2-core VM read 223 ms for a host that profiled at ~120 ms minutes later,
and every node was emulated ~30 % too fast (docs/BENCHMARKS.md, host independence)."""
FACTOR_TOLERANCE = 0.05
"""A host up to 5 % slower than a node still emulates it (at factor 1, i.e. up to 5 % slow):
two measurements of the same machine differ by a few percent, and refusing a host as fast as
the node over that noise would help nobody."""


@dataclass(frozen=True)
class HostReference:
    """This host's time for the reference workload, as the emulation uses it."""

    time_s: float
    """The sum over the reference model's blocks of each block's ``statistic``: what node
    times are divided by."""
    statistic: Statistic
    runs: int
    """Timed runs per block."""
    threads: int
    blocks: int

    def describe(self) -> str:
        """How ``time_s`` was obtained, for messages."""
        return (
            f"sum of its {self.blocks} blocks, each the {self.statistic} of {self.runs} runs, "
            f"{self.threads} thread(s)"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostReference:
        return cls(**data)


def measure_host(
    statistic: Statistic, *, threads: int = 1, runs: int = REFERENCE_RUNS
) -> HostReference:
    """Time the reference workload here, block by block, with the agents' session settings.

    ``statistic`` must be the one the emulated node's own times are summarised by (the
    testbed's agents use the minimum, ``qsplit profile`` the median), so that a block's time
    and the host's reference are the same kind of number and their ratio is the node's.
    """
    from qsplit.assets import bundled_model_path
    from qsplit.model import analyze

    model, graph = analyze(str(bundled_model_path("yolo11n")))
    profile = profile_compute(
        model,
        graph,
        node="host",
        threads=threads,
        warmup=1,
        repetitions=runs,
        int8=False,
        statistic=statistic,
    )
    return HostReference(
        time_s=sum(t.fp32_s for t in profile.blocks.values()),
        statistic=statistic,
        runs=runs,
        threads=threads,
        blocks=len(profile.blocks),
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
