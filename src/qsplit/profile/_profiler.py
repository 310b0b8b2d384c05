"""Per-block compute profiling: every block run alone as an extracted ONNX submodel.

Blocks are profiled as standalone submodels rather than read from ORT's per-node profile of the
whole model, because ``ORT_ENABLE_ALL`` fuses and renames most nodes, so per-node times cannot be
attributed back to blocks. Each block is fed the tensors it sees in the whole model (the reference
run of :mod:`qsplit.profile._reference`, fp32 or quantized, on the first calibration image), so
kernels see real input and sizes computed by other blocks are the real sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from qsplit.model import LayerGraph, LoadedModel
from qsplit.partition import Component, ComponentExtractor
from qsplit.profile._reference import reference_inputs, reference_values
from qsplit.profile._timing import (
    SessionSettings,
    Statistic,
    Summary,
    emulated_duration_s,
    make_session,
    time_run,
)
from qsplit.profile._types import BlockTiming, ComputeProfile
from qsplit.quant import (
    ActivationType,
    Calibration,
    Quantizer,
    calibrate,
    image_feeds,
    quantized_split_view,
    takes_images,
)

ProgressCallback = Callable[[int, int, str], None]
"""Called as ``progress(done, total, block_name)`` after each block is timed."""

CalibrationSource = Calibration | str | Path | None
"""Ranges already computed, a folder of calibration images, or ``None``: the bundled sample
images for an image model, else the random input the blocks are timed on."""


Timed = tuple[ort.InferenceSession, dict[str, np.ndarray]]
"""A session running one extracted block, and the feeds it gets in the whole model."""


@dataclass(frozen=True)
class _Source:
    """A model whose blocks are timed one at a time, each fed what it sees in the whole model."""

    extractor: ComponentExtractor
    graph: LayerGraph
    values: Mapping[str, np.ndarray]

    @classmethod
    def of(cls, model: LoadedModel, graph: LayerGraph, inputs: Mapping[str, np.ndarray]) -> _Source:
        values = reference_values(model, graph, dict(inputs))
        return cls(ComponentExtractor(model, graph), graph, values)

    def block(self, name: str, settings: SessionSettings) -> Timed:
        component = block_component(self.graph, name)
        session = make_session(self.extractor.extract(component), settings)
        return session, {t: self.values[t] for t in component.inputs}


def block_component(graph: LayerGraph, name: str, node: str = "local") -> Component:
    """The one-block component running block ``name`` alone."""
    inputs, outputs = graph.boundary([name])
    return Component(index=0, node=node, blocks=(name,), inputs=inputs, outputs=outputs)


def block_feeds(
    model: LoadedModel, graph: LayerGraph, calibration: CalibrationSource = None
) -> dict[str, np.ndarray]:
    """Every tensor of the LayerGraph, from the reference run of the whole model (on the first
    calibration image of an image model; see :func:`qsplit.profile.reference_inputs`)."""
    return reference_values(model, graph, reference_inputs(model, calibration))


def profile_compute(
    model: LoadedModel,
    graph: LayerGraph,
    *,
    node: str,
    padding_factor: float = 1.0,
    provider: str = "CPUExecutionProvider",
    threads: int = 1,
    warmup: int = 3,
    repetitions: int = 20,
    int8: bool = True,
    calibration: CalibrationSource = None,
    activation_type: ActivationType = "uint8",
    statistic: Statistic = "median",
    progress: ProgressCallback | None = None,
) -> ComputeProfile:
    """fp32 (and int8) latency of every block of ``graph`` on this machine, as node ``node``:
    the ``statistic`` (median, or minimum for emulated nodes) of the repetitions.

    Reported times are ``emulated_duration_s(measured, padding_factor)``: the same scaling the
    runtime applies when it pads component runs, so profile and run agree on an emulated node
    (the factor comes from :func:`qsplit.profile.padding_factor`; 1 times this machine as is).
    fp32 and int8 repetitions of a block alternate, so a burst of load from other processes
    hits both alike. int8 times are those of :class:`qsplit.quant.Quantizer`'s model (the one
    the noise model measures and the runtime deploys) with every quantizable block quantized,
    so a block is timed as it runs inside a quantized segment: reading and sending 8-bit
    tensors. Blocks with no op to quantize have no int8 time (``None``).
    """
    emulated_duration_s(1.0, padding_factor)  # validates the factor before any work
    settings = SessionSettings(provider=provider, threads=threads)
    inputs = reference_inputs(model, calibration)
    fp32 = _Source.of(model, graph, inputs)
    quantized: tuple[_Source, frozenset[str]] | None = None
    int8_settings = None
    if int8:
        quantizer, int8_settings = _quantizer(
            model, graph, fp32.values, calibration, activation_type
        )
        chosen = quantizer.quantizable
        qmodel, qgraph = quantized_split_view(quantizer.quantize(chosen), graph, chosen)
        quantized = _Source.of(qmodel, qgraph, inputs), frozenset(chosen)
    names = graph.block_names
    blocks: dict[str, BlockTiming] = {}
    for done, name in enumerate(names, start=1):
        timed = [fp32.block(name, settings)]
        if quantized is not None and name in quantized[1]:
            timed.append(quantized[0].block(name, settings))
        fp32_time, *int8_time = _measure(timed, warmup, repetitions)
        q8 = int8_time[0] if int8_time else None
        blocks[name] = BlockTiming(
            fp32_s=emulated_duration_s(fp32_time.value(statistic), padding_factor),
            int8_s=None if q8 is None else emulated_duration_s(q8.value(statistic), padding_factor),
            fp32_spread_s=emulated_duration_s(fp32_time.spread_s, padding_factor),
            int8_spread_s=0.0 if q8 is None else emulated_duration_s(q8.spread_s, padding_factor),
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
            "statistic": statistic,
            "spread": "interquartile range",
            "padding_factor": padding_factor,
            "int8": int8_settings,
            "source": "qsplit profile (extracted one-block submodels)",
        },
    )


def _quantizer(
    model: LoadedModel,
    graph: LayerGraph,
    values: Mapping[str, np.ndarray],
    calibration: CalibrationSource,
    activation_type: ActivationType,
) -> tuple[Quantizer, dict[str, str]]:
    """The Quantizer of ``model`` from ``calibration``, and how it was calibrated."""
    ranges, source = calibration_ranges(model, values, calibration)
    quantizer = Quantizer(model, graph, ranges, activation_type=activation_type)
    return quantizer, {**quantizer.settings, "calibration_inputs": source}


def calibration_ranges(
    model: LoadedModel, values: Mapping[str, np.ndarray], calibration: CalibrationSource
) -> tuple[Calibration, str]:
    """The activation ranges profiling uses, and where they came from.

    Without calibration inputs an image model uses the bundled sample images; any other model
    its reference input (in ``values``), since int8 kernels cost the same whatever the ranges
    are (and a compression table then has ranges of a typical input).
    """
    from qsplit.assets import sample_images_dir

    if isinstance(calibration, Calibration):
        return calibration, "given ranges"
    if calibration is not None:
        return calibrate(model, image_feeds(model, calibration)), str(calibration)
    if takes_images(model):
        return calibrate(model, image_feeds(model, sample_images_dir())), "bundled images"
    inputs = [{spec.name: values[spec.name] for spec in model.info.inputs}]
    return calibrate(model, inputs), "random input"


def _measure(timed: Sequence[Timed], warmup: int, repetitions: int) -> list[Summary]:
    """Median and spread of each session in ``timed``, their repetitions interleaved."""
    for _ in range(warmup):
        for session, feeds in timed:
            session.run(None, feeds)
    samples: list[list[float]] = [[] for _ in timed]
    for _ in range(max(1, repetitions)):
        for (session, feeds), times in zip(timed, samples, strict=True):
            times.append(time_run(session, feeds))
    return [Summary.of(times) for times in samples]
