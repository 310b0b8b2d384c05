"""Quantization: post-training int8 of block subsets, and the noise model the planner uses."""

from qsplit.quant._calibration import (
    Calibration,
    calibrate,
    image_feeds,
    load_image,
    takes_images,
)
from qsplit.quant._diagnosis import DEGENERATE_FIX, NoiseDiagnosis, diagnose
from qsplit.quant._metrics import (
    ClassificationMetric,
    DenseMetric,
    DetectionMetric,
    GenericMetric,
    Metric,
    MetricFactory,
    detections,
    map50,
    metric_kinds,
    register_metric,
    task_metric,
)
from qsplit.quant._noise import (
    NoiseSample,
    candidate_blocks,
    fit_noise,
    float_outputs,
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
    "DEGENERATE_FIX",
    "ActivationType",
    "Calibration",
    "ClassificationMetric",
    "DenseMetric",
    "DetectionMetric",
    "GenericMetric",
    "Metric",
    "MetricFactory",
    "NoiseDiagnosis",
    "NoisePolynomial",
    "NoiseSample",
    "NoiseStudy",
    "NoiseTerm",
    "Quantizer",
    "calibrate",
    "candidate_blocks",
    "detections",
    "diagnose",
    "fit_noise",
    "float_outputs",
    "image_feeds",
    "load_image",
    "map50",
    "metric_kinds",
    "plot_fit",
    "quantized_split_view",
    "random_masks",
    "register_metric",
    "sample_noise",
    "save_samples",
    "study_noise",
    "takes_images",
    "task_metric",
]
