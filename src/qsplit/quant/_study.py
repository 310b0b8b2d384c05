"""The whole noise study in one call: calibrate, choose candidates, sample masks, fit.

``qsplit noise`` and ``qsplit demo`` both build noise models; they share this function so that
they record the same settings and make the same choices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qsplit.model import LayerGraph, LoadedModel, ModelSpec
from qsplit.quant._calibration import Feeds, calibrate
from qsplit.quant._diagnosis import NoiseDiagnosis, diagnose
from qsplit.quant._metrics import task_metric
from qsplit.quant._noise import (
    NoiseSample,
    candidate_blocks,
    candidate_links,
    fit_noise,
    float_outputs,
    link_masks,
    random_masks,
    sample_noise,
    save_samples,
)
from qsplit.quant._noise_poly import NoisePolynomial
from qsplit.quant._ptq import Quantizer


@dataclass(frozen=True)
class NoiseStudy:
    """A fitted noise model with the samples it was fitted on."""

    model: NoisePolynomial
    samples: tuple[NoiseSample, ...]
    blocks: tuple[str, ...]
    """The variables the masks were drawn over: candidate blocks, then link variables."""
    unquantizable: tuple[str, ...]
    """Blocks left out because they hold no quantizable op."""
    settings: dict[str, Any]
    calibration_s: float
    seconds_per_mask: float

    @property
    def diagnosis(self) -> NoiseDiagnosis:
        """Whether the study measured anything (recorded in the noise model too)."""
        assert self.model.diagnosis is not None  # study_noise always diagnoses
        return self.model.diagnosis

    def save(self, path: str | Path) -> None:
        """The model at ``path``, its samples beside it (``<stem>.samples.json``)."""
        path = Path(path)
        self.model.save(str(path))
        save_samples(
            path.with_name(f"{path.stem}.samples.json"), self.samples, self.blocks, self.settings
        )


def study_noise(
    model: LoadedModel,
    graph: LayerGraph,
    feeds: Sequence[Feeds],
    *,
    samples: int,
    top_k: int = 12,
    include_head: bool = False,
    eval_images: int = 2,
    seed: int = 0,
    calibration_cache: str | Path | None = None,
    on_sample: Callable[[NoiseSample], None] | None = None,
    spec: ModelSpec | None = None,
    link_tensors: int = 0,
) -> NoiseStudy:
    """Calibrate on ``feeds``, measure ``samples`` random masks of the top-``top_k`` blocks on
    the first ``eval_images`` feeds, fit the polynomial (see :func:`fit_noise`) and diagnose
    the study (:func:`diagnose`).

    ``spec`` is how ``feeds`` were prepared and which task metric scores the masks (default:
    YOLO's preprocessing, task guessed); both are recorded in the fit's settings. With
    ``link_tensors`` > 0, the masks also send that many of the largest crossing tensors at fp16
    or int8 (:func:`link_masks`), and the fitted model has their link variables.
    """
    spec = spec or ModelSpec()
    start = time.perf_counter()
    calibration = calibrate(model, feeds, cache=calibration_cache, preprocess=spec.preprocess)
    quantizer = Quantizer(model, graph, calibration)
    calibration_s = time.perf_counter() - start
    blocks = candidate_blocks(graph, quantizer, top_k, include_head)
    if link_tensors > 0:
        tensors = candidate_links(graph, link_tensors)
        blocks, masks = link_masks(graph, blocks, tensors, samples, seed)
    else:
        masks = random_masks(len(blocks), samples, seed)
    start = time.perf_counter()
    evaluation = feeds[:eval_images]
    reference = float_outputs(quantizer, evaluation)
    metric = task_metric(spec.task, reference)
    measured = sample_noise(
        quantizer, blocks, masks, evaluation, on_sample, task=spec.task, reference=reference
    )
    seconds_per_mask = (time.perf_counter() - start) / len(masks)
    settings = {
        **quantizer.settings,
        "eval_images": len(evaluation),
        "preprocess": spec.preprocess.to_dict(),
        "task": {"kind": spec.task.kind, **spec.task.options},
        "task_metric": None if metric is None else metric.name,
    }
    poly = fit_noise(measured, blocks, model.info.sha256, seed=seed, settings=settings)
    diagnosis = diagnose(reference, [s.noise for s in measured], poly.fit["r2_test"])
    return NoiseStudy(
        model=replace(poly, diagnosis=diagnosis),
        samples=tuple(measured),
        blocks=tuple(blocks),
        unquantizable=tuple(quantizer.unquantizable),
        settings=settings,
        calibration_s=calibration_s,
        seconds_per_mask=seconds_per_mask,
    )
