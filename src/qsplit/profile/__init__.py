"""Profiling: per-block compute latency on each node, and link latency/bandwidth."""

from qsplit.profile._additivity import (
    AdditivityReport,
    AdditivitySample,
    fit_overhead,
    measure_additivity,
    random_components,
)
from qsplit.profile._emulation import (
    FACTOR_TOLERANCE,
    REFERENCE_WORKLOAD,
    HostReference,
    measure_host,
    node_factors,
    padding_factor,
)
from qsplit.profile._links import Request, answer_probe, measure_link, zmq_request
from qsplit.profile._node import (
    EMULATION_STATISTIC,
    profile_node,
    scale_profile,
    shipped_profile,
)
from qsplit.profile._profiler import (
    CalibrationSource,
    ProgressCallback,
    block_component,
    block_feeds,
    profile_compute,
)
from qsplit.profile._reference import reference_inputs, reference_values
from qsplit.profile._timing import (
    STATISTICS,
    SessionSettings,
    Statistic,
    Summary,
    emulated_duration_s,
    make_session,
    pad_to,
    reference_time_s,
    time_run,
)
from qsplit.profile._types import (
    BlockTiming,
    ComputeProfile,
    LinkMeasurement,
    LinkProfile,
    Overhead,
    load_compute_profiles,
)

__all__ = [
    "EMULATION_STATISTIC",
    "FACTOR_TOLERANCE",
    "REFERENCE_WORKLOAD",
    "STATISTICS",
    "AdditivityReport",
    "AdditivitySample",
    "BlockTiming",
    "CalibrationSource",
    "ComputeProfile",
    "HostReference",
    "LinkMeasurement",
    "LinkProfile",
    "Overhead",
    "ProgressCallback",
    "Request",
    "SessionSettings",
    "Statistic",
    "Summary",
    "answer_probe",
    "block_component",
    "block_feeds",
    "emulated_duration_s",
    "fit_overhead",
    "load_compute_profiles",
    "make_session",
    "measure_additivity",
    "measure_host",
    "measure_link",
    "node_factors",
    "pad_to",
    "padding_factor",
    "profile_compute",
    "profile_node",
    "random_components",
    "reference_inputs",
    "reference_time_s",
    "reference_values",
    "scale_profile",
    "shipped_profile",
    "time_run",
    "zmq_request",
]
