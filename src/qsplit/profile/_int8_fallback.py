"""Stand-in int8 quantizer for profiling, until ``qsplit.quant`` provides one.

The profiler only needs *some* QDQ int8 version of each block to time; the numbers it produces do
not depend on calibration quality (static int8 kernels cost the same whatever the scales are).
This quantizes one extracted block with ``onnxruntime.quantization.quantize_static`` (QDQ,
uint8 activations, int8 weights, per-tensor, MinMax over the given calibration feeds). It is
deliberately minimal: pass ``qsplit.quant``'s quantizer as ``profile_compute(..., quantizer=...)``
once it exists.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """``quantize_static`` warns on the root logger about pre-processing on every call; for
    one-block timing models that advice does not apply, and a CLI progress bar should not drown
    in it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _FeedsReader(CalibrationDataReader):
    """Hands ORT's calibrator a fixed list of input dictionaries."""

    def __init__(self, samples: Sequence[Mapping[str, np.ndarray]]) -> None:
        self._samples = iter([dict(s) for s in samples])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._samples, None)


def quantize_block_fallback(
    block_model: onnx.ModelProto, calibration: Sequence[Mapping[str, np.ndarray]]
) -> onnx.ModelProto | None:
    """A QDQ int8 version of a one-block model, or ``None`` if nothing in it gets quantized.

    Only weight-bearing ops get int8 kernels that change cost; a block of data movement alone
    (Concat, Resize, Reshape) would only gain Quantize/Dequantize pairs, so it has no int8
    timing of its own.
    """
    if not any(node.op_type in WEIGHTED_OPS for node in block_model.graph.node):
        return None
    with _quiet_root_logger(), tempfile.TemporaryDirectory(prefix="qsplit-int8-") as tmp:
        source, target = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        onnx.save(block_model, source)
        quantize_static(
            source,
            target,
            _FeedsReader(calibration),
            quant_format=QuantFormat.QDQ,
            # uint8 activations × int8 weights is the combination ORT's x86 kernels are fast
            # for; int8 activations ran 1.5-2.5× *slower* than fp32 on this AVX2 machine.
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return onnx.load(target)
