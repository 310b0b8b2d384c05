"""Profiling: per-block compute latency on each node, and link latency/bandwidth."""

from qsplit.profile._types import BlockTiming, ComputeProfile, LinkMeasurement, LinkProfile

__all__ = ["BlockTiming", "ComputeProfile", "LinkMeasurement", "LinkProfile"]
