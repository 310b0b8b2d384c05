"""The whole noise study in one call: calibrate, choose candidates, sample masks, fit.

``qsplit noise`` and ``qsplit demo`` both build noise models; they share this function so that
they record the same settings and make the same choices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsplit.model import LayerGraph, LoadedModel
from qsplit.quant._calibration import Feeds, calibrate
from qsplit.quant._noise import (
    NoiseSample,
    candidate_blocks,
    fit_noise,
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
    """The candidate blocks the masks were drawn over."""
    unquantizable: tuple[str, ...]
    """Blocks left out because they hold no quantizable op."""
    settings: dict[str, Any]
    calibration_s: float
    seconds_per_mask: float

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
) -> NoiseStudy:
    """Calibrate on ``feeds``, measure ``samples`` random masks of the top-``top_k`` blocks on
    the first ``eval_images`` feeds, and fit the polynomial (see :func:`fit_noise`)."""
    start = time.perf_counter()
    quantizer = Quantizer(model, graph, calibrate(model, feeds, cache=calibration_cache))
    calibration_s = time.perf_counter() - start
    blocks = candidate_blocks(graph, quantizer, top_k, include_head)
    masks = random_masks(len(blocks), samples, seed)
    start = time.perf_counter()
    measured = sample_noise(quantizer, blocks, masks, feeds[:eval_images], on_sample)
    seconds_per_mask = (time.perf_counter() - start) / len(masks)
    settings = {**quantizer.settings, "eval_images": len(feeds[:eval_images])}
    poly = fit_noise(measured, blocks, model.info.sha256, seed=seed, settings=settings)
    return NoiseStudy(
        model=poly,
        samples=tuple(measured),
        blocks=tuple(blocks),
        unquantizable=tuple(quantizer.unquantizable),
        settings=settings,
        calibration_s=calibration_s,
        seconds_per_mask=seconds_per_mask,
    )
