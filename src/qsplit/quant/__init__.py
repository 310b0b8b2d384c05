"""Quantization: post-training int8 of block subsets, and the noise model the planner uses."""

from qsplit.quant._noise_poly import NoisePolynomial, NoiseTerm

__all__ = ["NoisePolynomial", "NoiseTerm"]
