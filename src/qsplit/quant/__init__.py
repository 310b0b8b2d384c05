"""Quantization: post-training int8 of block subsets, and the noise model the planner uses."""

from qsplit.quant._calibration import Calibration, calibrate, image_feeds, load_image
from qsplit.quant._noise_poly import NoisePolynomial, NoiseTerm
from qsplit.quant._ptq import Quantizer, quantized_split_view

__all__ = [
    "Calibration",
    "NoisePolynomial",
    "NoiseTerm",
    "Quantizer",
    "calibrate",
    "image_feeds",
    "load_image",
    "quantized_split_view",
]
