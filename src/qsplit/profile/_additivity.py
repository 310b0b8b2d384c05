"""Additivity: does the sum of its blocks' profiled latencies predict a component's latency?

The planner costs a component as the sum of its blocks' times. That is only sound if running
blocks together costs what running them apart does. Two effects break it: each profiled block
pays a fixed per-``run`` cost (argument checks, output allocation, thread-pool wake-up) that a
component pays once, not once per block; and ORT may fuse across a block boundary inside a
component. This module measures the error on random components and fits the first effect as a
per-block overhead ``o``: ``predicted = Σ tᵢ − (k − 1)·o`` for a component of ``k`` blocks.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import onnxruntime as ort

from qsplit.model import LayerGraph, LoadedModel
from qsplit.partition import Component, ComponentExtractor
from qsplit.profile._timing import SessionSettings, Summary, make_session, time_run


@dataclass(frozen=True)
class AdditivitySample:
    """One component: its blocks, and its and its blocks' burst medians, one per round."""

    blocks: tuple[str, ...]
    measured_rounds_s: tuple[float, ...]
    block_rounds_s: tuple[tuple[float, ...], ...]
    """Per block (in ``blocks`` order), its burst medians."""

    @property
    def measured_s(self) -> float:
        """The component's latency: its least-disturbed round (load only adds time)."""
        return min(self.measured_rounds_s)

    @property
    def block_sum_s(self) -> float:
        """Σ of each block's least-disturbed round."""
        return sum(min(times) for times in self.block_rounds_s)

    def predicted_s(self, overhead_s: float = 0.0) -> float:
        return self.block_sum_s - (len(self.blocks) - 1) * overhead_s

    def error(self, overhead_s: float = 0.0) -> float:
        """Relative error of the prediction, signed (positive: the sum overestimates)."""
        return (self.predicted_s(overhead_s) - self.measured_s) / self.measured_s

    def median_of_rounds_error(self) -> float:
        """The raw error with medians over rounds instead of minima, both sides (the method
        before minima; kept to show what the statistic changes on the same runs)."""
        part = statistics.median(self.measured_rounds_s)
        return sum(statistics.median(t) for t in self.block_rounds_s) / part - 1


@dataclass(frozen=True)
class AdditivityReport:
    samples: tuple[AdditivitySample, ...]
    overhead_s: float
    """Fitted per-block overhead (see :func:`fit_overhead`)."""

    def errors(self, corrected: bool) -> list[float]:
        o = self.overhead_s if corrected else 0.0
        return [abs(s.error(o)) for s in self.samples]

    def to_dict(self) -> dict[str, Any]:
        raw, fixed = self.errors(False), self.errors(True)
        medians = [abs(s.median_of_rounds_error()) for s in self.samples]
        return {
            "components": len(self.samples),
            "overhead_s": self.overhead_s,
            "raw": {"median_abs_error": statistics.median(raw), "max_abs_error": max(raw)},
            "corrected": {
                "median_abs_error": statistics.median(fixed),
                "max_abs_error": max(fixed),
            },
            "raw_median_of_rounds": {
                "median_abs_error": statistics.median(medians),
                "max_abs_error": max(medians),
            },
            "mean_signed_error_raw": statistics.fmean(s.error() for s in self.samples),
        }


def random_components(
    graph: LayerGraph, count: int, seed: int = 0, max_blocks: int | None = None
) -> list[tuple[str, ...]]:
    """``count`` random block sets of at least two blocks: alternately a contiguous run of the
    topological order, and a connected set grown from a random block and closed under paths
    between its members (convex, so that it could be one component of a real plan)."""
    rng = random.Random(seed)
    names = graph.block_names
    dag = graph.dag
    limit = min(max_blocks or len(names), len(names))
    found: list[tuple[str, ...]] = []
    while len(found) < count:
        size = rng.randint(2, limit)
        if len(found) % 2 == 0:
            start = rng.randrange(len(names) - size + 1)
            members = set(names[start : start + size])
        else:
            members = _grown(dag, rng.choice(names), size, rng)
        key = tuple(n for n in names if n in members)
        if len(key) >= 2 and key not in found:
            found.append(key)
    return found


def _grown(dag: nx.DiGraph, seed: str, size: int, rng: random.Random) -> set[str]:
    members = {seed}
    while len(members) < size:
        frontier = sorted({m for b in members for m in nx.all_neighbors(dag, b)} - members)
        if not frontier:
            break
        members.add(rng.choice(frontier))
    # Convex closure: every block on a path between two members joins.
    between = set()
    for a in members:
        reach = nx.descendants(dag, a)
        for b in members & reach:
            between |= reach & nx.ancestors(dag, b)
    return members | between


def measure_additivity(
    model: LoadedModel,
    graph: LayerGraph,
    block_sets: Sequence[tuple[str, ...]],
    values: Mapping[str, np.ndarray],
    *,
    settings: SessionSettings | None = None,
    warmup: int = 1,
    repetitions: int = 5,
    rounds: int = 4,
) -> AdditivityReport:
    """Time each block set as one extracted component, and each of its blocks alone.

    ``values`` holds every tensor of the graph (see ``block_feeds``). Each measurement is a
    burst like the profiler's (``warmup`` untimed runs, then ``repetitions`` timed ones,
    median). Per component, ``rounds`` rounds each time the component and each of its blocks
    once, in the order component-then-blocks and blocks-then-component alternately, so that
    load drifting during a round hits both sides alike. Each side's time is the **minimum over
    rounds** of its burst medians: other processes on a shared machine only ever add time, so
    the least-disturbed burst is the best estimate of the undisturbed latency, for the component
    and for every block alike. Pairing in time matters too: a profile taken minutes before the
    components differs from them by the load change alone, which says nothing about additivity.
    """
    settings = settings or SessionSettings()
    extractor = ComponentExtractor(model, graph)

    def prepared(blocks: tuple[str, ...]) -> tuple[ort.InferenceSession, dict[str, np.ndarray]]:
        inputs, outputs = graph.boundary(blocks)
        part = Component(index=0, node="local", blocks=blocks, inputs=inputs, outputs=outputs)
        session = make_session(extractor.extract(part), settings)
        return session, {t: values[t] for t in inputs}

    def burst(run: tuple[ort.InferenceSession, dict[str, np.ndarray]]) -> float:
        for _ in range(warmup):
            run[0].run(None, run[1])
        return Summary.of([time_run(*run) for _ in range(repetitions)]).median_s

    singles = {name: prepared((name,)) for name in dict.fromkeys(b for s in block_sets for b in s)}
    samples = []
    for blocks in block_sets:
        part = prepared(blocks)
        part_times: list[float] = []
        block_times: dict[str, list[float]] = {name: [] for name in blocks}
        for round_index in range(rounds):
            if round_index % 2 == 0:
                part_times.append(burst(part))
            for name in blocks:
                block_times[name].append(burst(singles[name]))
            if round_index % 2 == 1:
                part_times.append(burst(part))
        samples.append(
            AdditivitySample(
                blocks=blocks,
                measured_rounds_s=tuple(part_times),
                block_rounds_s=tuple(tuple(block_times[name]) for name in blocks),
            )
        )
    return AdditivityReport(samples=tuple(samples), overhead_s=fit_overhead(samples))


def fit_overhead(samples: Sequence[AdditivitySample]) -> float:
    """Per-block overhead ``o`` minimising the squared *relative* errors of
    ``Σ tᵢ − (k − 1)·o`` (closed-form least squares; relative, because the acceptance bound is
    relative and large components would otherwise dominate)."""
    xs = [(len(s.blocks) - 1) / s.measured_s for s in samples]
    rs = [(s.block_sum_s - s.measured_s) / s.measured_s for s in samples]
    denominator = sum(x * x for x in xs)
    return sum(x * r for x, r in zip(xs, rs, strict=True)) / denominator if denominator else 0.0
