"""Model analysis: load an ONNX model, build its LayerGraph, coarsen it into blocks."""

from qsplit.model._layergraph import (
    Block,
    Granularity,
    LayerGraph,
    ModelInfo,
    Tensor,
    TensorSpec,
)

__all__ = ["Block", "Granularity", "LayerGraph", "ModelInfo", "Tensor", "TensorSpec"]
