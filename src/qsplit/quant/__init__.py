"""Quantization: post-training int8 of block subsets, and the noise model the planner uses."""

from qsplit.quant._calibration import (
    Calibration,
    calibrate,
    image_feeds,
    load_image,
    takes_images,
)
from qsplit.quant._metrics import TaskMetric, detections, map50
from qsplit.quant._noise import (
    NoiseSample,
    candidate_blocks,
    fit_noise,
    plot_fit,
    random_masks,
    sample_noise,
    save_samples,
)
from qsplit.quant._noise_poly import NoisePolynomial, NoiseTerm
from qsplit.quant._ptq import ACTIVATION_TYPES, ActivationType, Quantizer, quantized_split_view
from qsplit.quant._study import NoiseStudy, study_noise

__all__ = [
    "ACTIVATION_TYPES",
    "ActivationType",
    "Calibration",
    "NoisePolynomial",
    "NoiseSample",
    "NoiseStudy",
    "NoiseTerm",
    "Quantizer",
    "TaskMetric",
    "calibrate",
    "candidate_blocks",
    "detections",
    "fit_noise",
    "image_feeds",
    "load_image",
    "map50",
    "plot_fit",
    "quantized_split_view",
    "random_masks",
    "sample_noise",
    "save_samples",
    "study_noise",
    "takes_images",
]
