"""Timing ONNX submodels with ONNX Runtime, and emulating slower nodes.

Both the profiler and the runtime time component runs with the helpers here, so that a profile
and a live run measure (and emulate) the same thing by construction.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort

from qsplit.errors import InputError


@dataclass(frozen=True)
class SessionSettings:
    """How ORT sessions are built for timing.

    One intra-op thread and no spinning by default: several emulated nodes share the same few
    cores on the local testbed, and a spinning thread pool would steal the cores of the others
    while it waits.
    """

    provider: str = "CPUExecutionProvider"
    threads: int = 1
    spinning: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "threads": self.threads,
            "spinning": self.spinning,
            "graph_optimization": "ORT_ENABLE_ALL",
            "onnxruntime": ort.__version__,
        }


def make_session(model: onnx.ModelProto, settings: SessionSettings) -> ort.InferenceSession:
    """An ORT session for timing one extracted submodel.

    ``ORT_ENABLE_ALL`` is safe here: fusions rename nodes only inside the submodel, whose
    boundary tensors keep their names.
    """
    if settings.provider not in ort.get_available_providers():
        raise InputError(
            f"execution provider {settings.provider!r} is not available",
            fix=f"use one of {', '.join(ort.get_available_providers())}",
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    spin = "1" if settings.spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return ort.InferenceSession(model.SerializeToString(), options, providers=[settings.provider])


def time_run(session: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> float:
    """Wall time of one ``session.run``, in seconds."""
    start = time.perf_counter()
    session.run(None, dict(feeds))
    return time.perf_counter() - start


Statistic = Literal["median", "min"]
"""What a set of repeated timings is summarised by. ``median``: the typical time on a machine
as it is. ``min``: the time undisturbed by other processes — what the testbed's emulated nodes
are defined by, because their cores are shared with each other and with whatever else runs."""
STATISTICS: tuple[Statistic, ...] = ("median", "min")


@dataclass(frozen=True)
class Summary:
    """Median, minimum and interquartile range of repeated measurements, in seconds."""

    median_s: float
    spread_s: float
    min_s: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if len(samples) < 2:
            return cls(float(samples[0]), 0.0, float(samples[0]))
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        return cls(float(statistics.median(samples)), float(q3 - q1), float(min(samples)))

    def value(self, statistic: Statistic) -> float:
        return self.median_s if statistic == "median" else self.min_s


def emulated_duration_s(measured_s: float, padding_factor: float) -> float:
    """How long a run that took ``measured_s`` here takes on the emulated node.

    ``padding_factor`` is the node's reference time over this host's
    (:func:`qsplit.profile.padding_factor`). The emulation is a deterministic scaling: the
    profiler reports it and the runtime pads each component run to it (:func:`pad_to`), so
    planned and observed latencies use the same model.
    """
    if padding_factor < 1.0:
        raise InputError(
            f"padding factor {padding_factor} is below 1",
            fix="a node can only be emulated as slower than this machine",
        )
    return measured_s * padding_factor


def reference_time_s(
    session: ort.InferenceSession,
    feeds: Mapping[str, np.ndarray],
    repetitions: int = 5,
    statistic: Statistic = "median",
) -> float:
    """``statistic`` of ``repetitions`` runs of ``session`` on ``feeds``, after a warm-up.

    The runtime measures each component once, when it is deployed, and pads every later run of
    it to ``padding_factor ×`` this time (:func:`pad_to`): a slower node is then emulated by a
    fixed duration, so a burst of load on the shared cores is not multiplied by the factor.
    ``feeds`` are the component's inputs in the deployment's reference run (values it can
    receive: random ones may be sizes no other component would send). Use the statistic the
    node's profile was measured with, so plan and run agree.
    """
    session.run(None, feeds)
    return Summary.of([time_run(session, feeds) for _ in range(repetitions)]).value(statistic)


def pad_to(start_s: float, measured_s: float, padding_factor: float) -> float:
    """Sleep until ``start_s + emulated_duration_s(measured_s, padding_factor)`` on
    ``time.perf_counter``'s clock; returns the emulated duration.

    The runtime calls this right after a component run that started at ``start_s`` and took
    ``measured_s``.
    """
    emulated = emulated_duration_s(measured_s, padding_factor)
    remaining = start_s + emulated - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)
    return emulated
