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

That number is right for the padding factor but flatters the host for a different question:
can the host run a node's component *within* the node's time, so that padding has something to
add? A component of hundreds of milliseconds does not get the quiet moments a 1 ms block run
catches; under a CPU quota it is throttled all along. So the testbed also times whole runs of
the reference model (:data:`WHOLE_RUNS`, their minimum) and emulates a node only with
:data:`HEADROOM` to spare over that (:func:`padding_factor`). The minimum, not the median: a
quota throttles every long run alike, so their least time shows it, while other jobs on the
cores come and go — at load 14 on the 2-core VM the median of 9 whole runs read over 0.9 s and
refused a 1 s device that the testbed emulates well there (components are padded to fixed
times, so what matters is that the host *can* run them faster, not that it always does). Where a
host is too slow for that, :func:`qsplit.testbed.dilated_infra` slows every node and link of a
scenario by the same factor instead, so the same scenario still runs, its times ``k×`` the real
ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from qsplit.errors import InputError
from qsplit.infra import Infra
from qsplit.profile._profiler import profile_compute
from qsplit.profile._reference import reference_inputs
from qsplit.profile._timing import SessionSettings, Statistic, make_session, time_run

if TYPE_CHECKING:
    from qsplit.model import LoadedModel

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
WHOLE_RUNS = 9
"""Timed whole runs of the reference model (after a warm-up) for :attr:`HostReference.whole_s`."""
HEADROOM = 0.10
"""A node is emulated only if its reference time is at least this much above the host's least
whole run. Padding can only lengthen a run: a node with less to spare is emulated too slow
whenever a long run is slower than the least one. On the quota'd 2-core VM the 300 ms cloud,
padded 1.22× by the block minima, measured 17-23 % over its plans' times (docs/BENCHMARKS.md,
host independence)."""


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
    whole_s: float | None = None
    """Least of :data:`WHOLE_RUNS` runs of the whole reference model (``None``: not measured):
    what a long component run takes here at best, checked against each node with
    :data:`HEADROOM`."""

    def describe(self) -> str:
        """How ``time_s`` was obtained, for messages."""
        return (
            f"sum of its {self.blocks} blocks, each the {self.statistic} of {self.runs} runs, "
            f"{self.threads} thread(s)"
        )

    def describe_whole(self) -> str:
        """How ``whole_s`` was obtained, for messages."""
        return f"least of {WHOLE_RUNS} runs of the whole model, {self.threads} thread(s)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostReference:
        return cls(**data)


def measure_host(
    statistic: Statistic, *, threads: int = 1, runs: int = REFERENCE_RUNS, whole: bool = False
) -> HostReference:
    """Time the reference workload here, block by block, with the agents' session settings.

    ``statistic`` must be the one the emulated node's own times are summarised by (the
    testbed's agents use the minimum, ``qsplit profile`` the median), so that a block's time
    and the host's reference are the same kind of number and their ratio is the node's.
    ``whole`` also times whole runs (:attr:`HostReference.whole_s`), for the headroom check of
    an emulation that runs components.
    """
    from qsplit.assets import bundled_model_path
    from qsplit.model import analyze

    model, graph = analyze(str(bundled_model_path("yolo11n")))
    whole_s = _least_whole_run_s(model, threads) if whole else None
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
        whole_s=whole_s,
    )


def _least_whole_run_s(model: LoadedModel, threads: int) -> float:
    session = make_session(model.proto, SessionSettings(threads=threads))
    feeds = reference_inputs(model)
    session.run(None, dict(feeds))
    return min(time_run(session, feeds) for _ in range(WHOLE_RUNS))


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
    if host.whole_s is not None and reference_s < host.whole_s * (1.0 + HEADROOM):
        needed_ms = host.whole_s * (1.0 + HEADROOM) * 1e3
        raise InputError(
            f"this host has too little headroom to emulate node {node!r}: the node's reference "
            f"time is {reference_s * 1e3:.0f} ms, and a whole run of {REFERENCE_WORKLOAD} takes "
            f"{host.whole_s * 1e3:.0f} ms here ({host.describe_whole()}), less than "
            f"{HEADROOM:.0%} below it; its long component runs would overshoot their time",
            file=infra.source,
            field=field,
            fix=f"run on a faster or quieter host, describe a slower node "
            f"(reference_time ≥ {needed_ms:.0f}ms), or slow the whole scenario down by a time "
            f"dilation factor (qsplit.testbed.dilated_infra, `qsplit demo --dilation`)",
        )
    return max(1.0, factor)


def node_factors(infra: Infra, host: HostReference) -> dict[str, float]:
    """The padding factor of every node of ``infra``, for an emulation of all of them."""
    return {name: padding_factor(infra, name, host) for name in infra.node_names}
