"""Per-block compute profiling: every block run alone as an extracted ONNX submodel.

Blocks are profiled as standalone submodels rather than read from ORT's per-node profile of the
whole model, because ``ORT_ENABLE_ALL`` fuses and renames most nodes, so per-node times cannot be
attributed back to blocks. Each block is fed the tensors it sees in the whole model (one fp32
run with every intermediate tensor as an output), so data-dependent kernels see realistic input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from qsplit.model import LayerGraph, LoadedModel
from qsplit.partition import Component, ComponentExtractor
from qsplit.profile._int8_fallback import quantize_block_fallback
from qsplit.profile._timing import (
    SessionSettings,
    Summary,
    emulated_duration_s,
    make_session,
    time_run,
)
from qsplit.profile._types import BlockTiming, ComputeProfile

BlockQuantizer = Callable[
    [onnx.ModelProto, Sequence[Mapping[str, np.ndarray]]], onnx.ModelProto | None
]
"""Turns a one-block fp32 model and calibration feeds into its int8 model (``None``: not
quantizable). Any quantizer plugs into the profiler through this signature."""

ProgressCallback = Callable[[int, int, str], None]
"""Called as ``progress(done, total, block_name)`` after each block is timed."""


@dataclass(frozen=True)
class _Prepared:
    name: str
    feeds: dict[str, np.ndarray]
    fp32: ort.InferenceSession
    int8: ort.InferenceSession | None


def block_component(graph: LayerGraph, name: str, node: str = "local") -> Component:
    """The one-block component running block ``name`` alone."""
    inputs, outputs = graph.boundary([name])
    return Component(index=0, node=node, blocks=(name,), inputs=inputs, outputs=outputs)


def block_feeds(model: LoadedModel, graph: LayerGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """Every tensor of the LayerGraph, from one fp32 run of the whole model on random input.

    Float inputs are standard normal, integer inputs zero (indices and sizes must stay valid).
    """
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for spec in graph.model.inputs:
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.floating):
            values[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
        else:
            values[spec.name] = np.zeros(spec.shape, dtype=dtype)
    produced = tuple(t.name for t in graph.tensors if t.producer is not None)
    everything = Component(
        index=0,
        node="local",
        blocks=graph.block_names,
        inputs=tuple(values),
        outputs=produced,
    )
    whole = ComponentExtractor(model, graph).extract(everything)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(
        whole.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    values.update(zip(produced, session.run(list(produced), values), strict=True))
    return values


def profile_compute(
    model: LoadedModel,
    graph: LayerGraph,
    *,
    node: str,
    speed_factor: float = 1.0,
    provider: str = "CPUExecutionProvider",
    threads: int = 1,
    warmup: int = 3,
    repetitions: int = 20,
    int8: bool = True,
    quantizer: BlockQuantizer | None = None,
    progress: ProgressCallback | None = None,
) -> ComputeProfile:
    """Median fp32 (and int8) latency of every block of ``graph`` on this machine, as node
    ``node``.

    Reported times are ``emulated_duration_s(measured, speed_factor)``: the same scaling the
    runtime applies when it pads component runs, so profile and run agree on a slower node.
    fp32 and int8 repetitions of a block alternate, so a burst of load from other processes
    hits both alike. ``quantizer`` defaults to :func:`quantize_block_fallback`.
    """
    emulated_duration_s(1.0, speed_factor)  # validates the factor before any work
    settings = SessionSettings(provider=provider, threads=threads)
    quantize = quantizer or quantize_block_fallback
    extractor = ComponentExtractor(model, graph)
    values = block_feeds(model, graph)
    names = graph.block_names
    blocks: dict[str, BlockTiming] = {}
    for done, name in enumerate(names, start=1):
        prepared = _prepare(graph, extractor, values, name, settings, quantize if int8 else None)
        fp32, q8 = _measure(prepared, warmup, repetitions)
        blocks[name] = BlockTiming(
            fp32_s=emulated_duration_s(fp32.median_s, speed_factor),
            int8_s=None if q8 is None else emulated_duration_s(q8.median_s, speed_factor),
            fp32_spread_s=emulated_duration_s(fp32.spread_s, speed_factor),
            int8_spread_s=0.0 if q8 is None else emulated_duration_s(q8.spread_s, speed_factor),
        )
        if progress is not None:
            progress(done, len(names), name)
    return ComputeProfile(
        node=node,
        model_sha256=graph.model.sha256,
        granularity=graph.granularity,
        blocks=blocks,
        settings={
            **settings.to_dict(),
            "warmup": warmup,
            "repetitions": repetitions,
            "statistic": "median",
            "spread": "interquartile range",
            "speed_factor": speed_factor,
            "int8": (quantizer.__qualname__ if quantizer else "quantize_block_fallback")
            if int8
            else None,
            "source": "qsplit profile (extracted one-block submodels)",
        },
    )


def _prepare(
    graph: LayerGraph,
    extractor: ComponentExtractor,
    values: Mapping[str, np.ndarray],
    name: str,
    settings: SessionSettings,
    quantize: BlockQuantizer | None,
) -> _Prepared:
    component = block_component(graph, name)
    sub = extractor.extract(component)
    feeds = {t: values[t] for t in component.inputs}
    quantized = quantize(sub, [feeds]) if quantize is not None else None
    return _Prepared(
        name=name,
        feeds=feeds,
        fp32=make_session(sub, settings),
        int8=None if quantized is None else make_session(quantized, settings),
    )


def _measure(block: _Prepared, warmup: int, repetitions: int) -> tuple[Summary, Summary | None]:
    sessions = [s for s in (block.fp32, block.int8) if s is not None]
    for _ in range(warmup):
        for session in sessions:
            session.run(None, block.feeds)
    samples: list[list[float]] = [[] for _ in sessions]
    for _ in range(max(1, repetitions)):
        for session, times in zip(sessions, samples, strict=True):
            times.append(time_run(session, block.feeds))
    fp32 = Summary.of(samples[0])
    return fp32, Summary.of(samples[1]) if block.int8 is not None else None
