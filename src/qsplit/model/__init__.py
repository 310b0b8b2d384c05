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
from qsplit.model._preprocess import (
    CHANNEL_ORDERS,
    LAYOUTS,
    LETTERBOX_GREY,
    RESIZE_MODES,
    Preprocess,
    image_dims,
    preprocess_image,
)
from qsplit.model._spec import (
    SPEC_SUFFIX,
    TASK_KINDS,
    ModelSpec,
    TaskSpec,
    load_model_spec,
    model_spec_from_dict,
    resolve_model_spec,
)


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
    "CHANNEL_ORDERS",
    "LAYOUTS",
    "LETTERBOX_GREY",
    "RESIZE_MODES",
    "SPEC_SUFFIX",
    "TASK_KINDS",
    "Block",
    "Granularity",
    "LayerGraph",
    "LoadedModel",
    "ModelInfo",
    "ModelSpec",
    "Preprocess",
    "TaskSpec",
    "Tensor",
    "TensorSpec",
    "ValueType",
    "acyclic_groups",
    "analyze",
    "build_node_graph",
    "coarsen",
    "image_dims",
    "load_model",
    "load_model_spec",
    "merge_blocks",
    "model_spec_from_dict",
    "parse_input_shape",
    "pinned_copy",
    "preprocess_image",
    "resolve_model_spec",
]
