"""A node's compute profile: one path for ``qsplit profile``, the agents and the demo.

:func:`profile_node` is the only way qsplit makes a node's profile. ``qsplit profile`` calls it
here; an agent calls it when asked (``profile`` message, ``qsplit.runtime.profile_on_agent``),
which is how the demo profiles its nodes. The same arguments therefore give the same numbers
on either path: the same session settings, warm-up, repetitions, statistic, inputs and padding.
The two things that decide them are the node's emulation (its ``reference_time``, which selects
a shipped profile, and the padding factor, which scales measured times) and the statistic,
:data:`EMULATION_STATISTIC` for an emulated node and the median for a real one.

**Shipped profiles.**

A node with a ``reference_time`` is fully described by it only for the reference workload as a
whole; how that time splits into blocks, and what int8 saves on each, used to be measured on
whatever host ran the emulation. That made plans depend on the host: under a CPU quota short
(int8) block runs escape throttling, so the slowed host profiled them relatively cheaper and 6
of the demo's 18 plans changed (docs/BENCHMARKS.md, *Host independence*). A shipped profile
removes the measurement: it was made once on a quiet host, and an emulated node's profile is
that file scaled to the node's absolute speed, ``node reference_time / the shipping host's
reference time``. The same file gives the same plans on every host; the testbed then pads each
component to the profile's time (``ComponentSpec.compute_s``), so a host fast enough to emulate
the node measures what was predicted.

Shipped profiles are compute-profile files under ``qsplit/assets/profiles/`` whose settings
carry ``host_reference_s``, the shipping host's time for the reference workload measured
with the same statistic (for the reference model itself, the sum of its blocks' fp32 times).
A model without one is profiled on the host as before (``reference_time`` × the host's
shares, :func:`qsplit.profile.padding_factor`).
"""

from __future__ import annotations

import dataclasses
import math

from qsplit.assets import bundled_profile_paths
from qsplit.errors import InputError
from qsplit.model import LayerGraph, LoadedModel
from qsplit.profile._codec import measure_codec_times
from qsplit.profile._profiler import CalibrationSource, ProgressCallback, profile_compute
from qsplit.profile._timing import SessionSettings, Statistic
from qsplit.profile._types import ComputeProfile

EMULATION_STATISTIC: Statistic = "min"
"""How an emulated node's repeated timings are summarised, in its profile and in this host's
reference time: its undisturbed speed. Emulated nodes share this machine's cores with each
other and with whatever else runs, and the median would carry that load into every profile and
padded run. A real node keeps the median: there the typical time is what matters."""


def profile_node(
    model: LoadedModel,
    graph: LayerGraph,
    *,
    node: str,
    reference_time_s: float | None = None,
    padding_factor: float = 1.0,
    statistic: Statistic = "median",
    provider: str = "CPUExecutionProvider",
    threads: int = 1,
    warmup: int = 3,
    repetitions: int = 20,
    int8: bool = True,
    calibration: CalibrationSource = None,
    progress: ProgressCallback | None = None,
    shipped: bool = True,
    codec: bool = True,
) -> ComputeProfile:
    """The compute profile of ``node`` for ``graph``'s model.

    An emulated node (``reference_time_s`` given) whose model has a shipped profile gets it,
    scaled to its reference time, without measuring its blocks (unless ``shipped`` is off).
    Otherwise every block is timed here (:func:`qsplit.profile.profile_compute`, whose
    arguments the rest are), scaled by ``padding_factor`` and summarised by ``statistic``.
    With ``codec``, the profile also gets the node's link codec times
    (:func:`qsplit.profile.measure_codec_times`, × ``padding_factor``) unless the shipped
    profile has them.
    """
    profile = None
    if shipped and reference_time_s is not None:
        profile = shipped_profile(graph, node, reference_time_s)
    if profile is None:
        profile = profile_compute(
            model,
            graph,
            node=node,
            padding_factor=padding_factor,
            statistic=statistic,
            provider=provider,
            threads=threads,
            warmup=warmup,
            repetitions=repetitions,
            int8=int8,
            calibration=calibration,
            progress=progress,
        )
    if codec and profile.codec is None:
        settings = SessionSettings(provider=provider, threads=threads)
        times = measure_codec_times(
            padding_factor=padding_factor, statistic=statistic, settings=settings
        )
        profile = dataclasses.replace(profile, codec=times)
    return profile


def shipped_profile(graph: LayerGraph, node: str, reference_time_s: float) -> ComputeProfile | None:
    """The profile of ``graph``'s model on a node whose reference time is ``reference_time_s``,
    from the shipped profile of that model and granularity; ``None`` if none is shipped."""
    for path in bundled_profile_paths():
        base = ComputeProfile.load(str(path))
        if base.model_sha256 == graph.model.sha256 and base.granularity == graph.granularity:
            if set(base.blocks) != set(graph.block_names):
                raise InputError(
                    "the shipped profile's blocks are not the model's",
                    file=str(path),
                    field="blocks",
                    fix="re-measure it (docs/profiling.md, *Shipped profiles*)",
                )
            return scale_profile(base, node, reference_time_s, source=path.name)
    return None


def scale_profile(
    base: ComputeProfile, node: str, reference_time_s: float, *, source: str
) -> ComputeProfile:
    """``base`` (measured on a host whose reference time is its ``host_reference_s``) as the
    profile of ``node``, whose reference time is ``reference_time_s``: every time × their
    ratio. The ratio may be below 1: nothing waits here, a faster node is just written down."""
    host_s = base.settings.get("host_reference_s")
    if not isinstance(host_s, int | float) or host_s <= 0:
        raise InputError(
            "a shipped profile needs the reference time of the host it was measured on",
            file=source,
            field="settings.host_reference_s",
            fix="record the host's time for the reference workload, in seconds",
        )
    if not (math.isfinite(reference_time_s) and reference_time_s > 0):
        raise InputError(f"node {node!r}: reference time {reference_time_s} s is not positive")
    scale = reference_time_s / host_s
    blocks = base.blocks_scaled(scale)
    settings = {
        **{k: v for k, v in base.settings.items() if k != "padding_factor"},
        "source": f"shipped profile {source}, scaled to the node's reference_time",
        "reference_time_s": reference_time_s,
        "scale": scale,
    }
    codec = None if base.codec is None else base.codec.scaled(scale)
    return ComputeProfile(node, base.model_sha256, base.granularity, blocks, settings, codec)
