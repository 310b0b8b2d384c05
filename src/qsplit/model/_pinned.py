"""A copy of a model with concrete input shapes and an opset qsplit's int8 path accepts.

Third-party exports (paddle2onnx's PaddleOCR models, for one) come with dynamic input
dimensions and opsets 11-12. Every stage now takes ``--input-shape`` and :func:`load_model`
raises such an opset to 13 itself (per-channel int8 needs it), so the original file can be used
as it is; a pinned copy is for tools outside qsplit that need a static file, and for the model
corpus, whose measurements were made on pinned copies. It is a new file (its own sha256), so
plans made for it name it and not the original.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import onnx
from onnx import shape_inference, version_converter

from qsplit.errors import ModelError
from qsplit.model._load import PER_CHANNEL_OPSET


def pinned_copy(
    path: str | Path,
    out: str | Path,
    input_shapes: Mapping[str, tuple[int, ...]],
    min_opset: int = PER_CHANNEL_OPSET,
) -> Path:
    """Write ``path`` to ``out`` with ``input_shapes`` fixed and the default-domain opset raised
    to at least ``min_opset``; output and intermediate shapes are inferred anew."""
    path, out = Path(path), Path(out)
    proto = onnx.load(path)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset < min_opset:
        try:
            proto = version_converter.convert_version(proto, min_opset)
        except Exception as exc:  # the converter raises bare RuntimeErrors from C++
            raise ModelError(
                f"cannot convert opset {opset} to {min_opset}: {exc}",
                file=path,
                field="opset_import",
                fix="export the model at opset 13 or later",
            ) from None
    inputs = {v.name: v for v in proto.graph.input}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise ModelError(
                f"the model has no input {name!r}",
                file=path,
                field="input_shapes",
                fix=f"name one of its inputs: {', '.join(inputs)}",
            )
        tensor = inputs[name].type.tensor_type
        tensor.ClearField("shape")
        for size in shape:
            tensor.shape.dim.add().dim_value = size
    del proto.graph.value_info[:]
    for value in proto.graph.output:
        # Forget symbolic and -1 sizes (they would contradict the pinned inputs) but keep the
        # rank: inference may not reach every output, and an output needs a shape to be valid.
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_value <= 0:
                dim.Clear()
    proto = shape_inference.infer_shapes(proto, data_prop=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, out)
    return out
