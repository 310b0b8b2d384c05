"""Model analysis: load an ONNX model, build its LayerGraph, coarsen it into blocks."""

from qsplit.model._analyze import build_node_graph
from qsplit.model._coarsen import coarsen, merge_blocks
from qsplit.model._grouping import acyclic_groups
from qsplit.model._layergraph import (
    Block,
    Granularity,
    LayerGraph,
    ModelInfo,
    Tensor,
    TensorSpec,
)
from qsplit.model._load import LoadedModel, ValueType, load_model, parse_input_shape
from qsplit.model._pinned import pinned_copy


def analyze(
    path: str,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    granularity: Granularity = "block",
) -> tuple[LoadedModel, LayerGraph]:
    """Load a model and build its LayerGraph at the given granularity."""
    model = load_model(path, input_shapes)
    graph = build_node_graph(model)
    return model, coarsen(graph) if granularity == "block" else graph


__all__ = [
    "Block",
    "Granularity",
    "LayerGraph",
    "LoadedModel",
    "ModelInfo",
    "Tensor",
    "TensorSpec",
    "ValueType",
    "acyclic_groups",
    "analyze",
    "build_node_graph",
    "coarsen",
    "load_model",
    "merge_blocks",
    "parse_input_shape",
    "pinned_copy",
]
