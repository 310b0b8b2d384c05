"""Loading an ONNX model into a form every later stage can rely on.

The loaded model is *normalised*: an opset older than 13 is converted to 13 (per-channel int8
needs it), every node has a unique, non-empty name (blocks and plans refer
to nodes by name), weights stored as ``Constant`` nodes become initializers and so do the results
of nodes computed from weights alone (:mod:`qsplit.model._fold`), dynamic input dimensions are
fixed from ``--input-shape``, and every tensor has a concrete shape, from ONNX shape inference
or, where inference gives up, from one run of the model on zeros. All user
mistakes end in a :class:`ModelError` that names the file and the fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper, shape_inference

from qsplit.errors import ModelError
from qsplit.model._fold import fold_constants
from qsplit.model._layergraph import ModelInfo, TensorSpec

MIN_OPSET = 11
PER_CHANNEL_OPSET = 13
"""First opset whose DequantizeLinear has ``axis``: per-channel int8 weights need it."""


@dataclass(frozen=True)
class ValueType:
    """Concrete shape and NumPy dtype name of one tensor."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class LoadedModel:
    """A normalised ONNX model with the concrete type of every value in it."""

    proto: onnx.ModelProto
    info: ModelInfo
    values: Mapping[str, ValueType]
    """Type of every graph input, output and intermediate tensor (not of initializers)."""


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse ``NAME=1x3x640x640`` (as given to ``--input-shape``)."""
    name, sep, dims = text.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise ModelError(
            f"cannot read input shape {text!r}",
            field="--input-shape",
            fix="write NAME=DxDx…, e.g. images=1x3x640x640",
        )
    return name, shape


def load_model(
    path: str | Path, input_shapes: Mapping[str, tuple[int, ...]] | None = None
) -> LoadedModel:
    """Load, check, normalise and shape an ONNX model; see the module docstring."""
    path = Path(path)
    input_shapes = dict(input_shapes or {})
    data = _read_bytes(path)
    proto = _parse(path, data)
    _check_opset(path, proto)
    proto = _raise_opset(proto)
    _name_nodes(proto)
    _constants_to_initializers(proto)
    fold_constants(proto)
    _fix_input_shapes(path, proto, input_shapes)
    proto = _infer_shapes(path, proto)
    values = _value_types(proto)
    missing = _unshaped_values(proto, values)
    if missing:
        values.update(_shapes_by_running(path, proto, missing))
    info = ModelInfo(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        inputs=tuple(_spec(v.name, values) for v in _real_inputs(proto)),
        outputs=tuple(_spec(v.name, values) for v in proto.graph.output),
        input_shapes=tuple(sorted(input_shapes.items())),
    )
    return LoadedModel(proto=proto, info=info, values=values)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError("file not found", file=path, fix="check the path") from None
    except IsADirectoryError:
        raise ModelError("is a directory", file=path, fix="pass an .onnx file") from None


def _parse(path: Path, data: bytes) -> onnx.ModelProto:
    fix = "pass a complete .onnx file (re-export or re-download it)"
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError:
        raise ModelError(
            "not an ONNX model or truncated (protobuf decoding failed)", file=path, fix=fix
        ) from None
    if not proto.graph.node or not proto.opset_import:
        raise ModelError(
            "not an ONNX model or truncated (no graph nodes or no opset)", file=path, fix=fix
        )
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        try:
            onnx.load_external_data_for_model(proto, str(path.parent))
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"external weight data cannot be read ({exc})",
                file=path,
                fix="keep the model's external data files beside it",
            ) from None
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"invalid ONNX model: {first}", file=path, fix=fix) from None
    return proto


def _check_opset(path: Path, proto: onnx.ModelProto) -> None:
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < MIN_OPSET:
        raise ModelError(
            f"default-domain opset {opset} is older than {MIN_OPSET}",
            file=path,
            field="opset_import",
            fix=f"convert it with onnx.version_converter to opset {MIN_OPSET} or newer",
        )


def _raise_opset(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` converted to :data:`PER_CHANNEL_OPSET` when its default-domain opset is older.

    Exporters still write opset 11–12 (paddle2onnx did for PaddleOCR); quantizing such a model
    per channel makes a DequantizeLinear with ``axis``, which ONNX Runtime refuses below 13. The
    conversion changes operator versions, not the computation (outputs within float rounding:
    6e-7 relative on the PaddleOCR models). A model the converter cannot handle stays as it is:
    it still analyses, plans and runs in fp32.
    """
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= PER_CHANNEL_OPSET:
        return proto
    from onnx import version_converter

    try:
        return version_converter.convert_version(proto, PER_CHANNEL_OPSET)
    except Exception:  # the converter raises bare RuntimeErrors from C++
        return proto


def _name_nodes(proto: onnx.ModelProto) -> None:
    """Give every node a unique non-empty name, keeping names that already are."""
    seen: set[str] = set()
    for index, node in enumerate(proto.graph.node):
        name = node.name
        if not name or name in seen:
            base = f"{node.op_type}_{index}"
            name, n = base, 1
            while name in seen:
                n += 1
                name = f"{base}_{n}"
            node.name = name
        seen.add(name)


_CONSTANT_ATTRIBUTES = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
}


def _constants_to_initializers(proto: onnx.ModelProto) -> None:
    """Turn the main graph's ``Constant`` nodes into initializers of the same name.

    Exporters other than PyTorch's (TensorFlow's, PaddlePaddle's, older ones) store every weight
    as a ``Constant`` node. As nodes they would be blocks of their own, with 0 weight bytes,
    placed and timed apart from the layer that reads them, and shipped over a link on every
    request. As initializers they are what they are: weights of the blocks that read them,
    copied into every component that needs one. ONNX Runtime makes the same change when it
    loads a model, so results are unchanged. A constant that is itself a model output, and
    sparse or string constants, stay nodes.
    """
    graph = proto.graph
    outputs = {o.name for o in graph.output}
    kept, lifted = [], []
    for node in graph.node:
        tensor = None
        lift = node.op_type == "Constant" and node.domain in ("", "ai.onnx")
        if lift and node.output[0] not in outputs:
            tensor = _constant_tensor(node)
        if tensor is None:
            kept.append(node)
        else:
            tensor.name = node.output[0]
            lifted.append(tensor)
    if not lifted:
        return
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(lifted)
    if proto.ir_version < 4:  # before IR 4 every initializer must also be a graph input
        graph.input.extend(
            helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in lifted
        )


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The value of a ``Constant`` node as a tensor, or ``None`` for kinds that stay nodes."""
    (attribute,) = node.attribute
    if attribute.name == "value":
        if attribute.t.data_type == onnx.TensorProto.STRING:
            return None
        tensor = onnx.TensorProto()
        tensor.CopyFrom(attribute.t)
        return tensor
    dtype = _CONSTANT_ATTRIBUTES.get(attribute.name)
    if dtype is None:
        return None
    return numpy_helper.from_array(np.array(helper.get_attribute_value(attribute), dtype))


def _real_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in initializers]


def _fix_input_shapes(
    path: Path, proto: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]
) -> None:
    inputs = {v.name: v for v in _real_inputs(proto)}
    names = ", ".join(inputs)
    for name in input_shapes:
        if name not in inputs:
            raise ModelError(
                f"the model has no input {name!r}",
                file=path,
                field="--input-shape",
                fix=f"name one of its inputs: {names}",
            )
    for name, value in inputs.items():
        dims = value.type.tensor_type.shape.dim
        given = input_shapes.get(name)
        if given is None:
            dynamic = [i for i, d in enumerate(dims) if not _is_fixed(d)]
            if dynamic or not value.type.tensor_type.HasField("shape"):
                shown = "x".join(
                    str(d.dim_value) if _is_fixed(d) else d.dim_param or "?" for d in dims
                )
                raise ModelError(
                    f"input {name!r} has dynamic dimensions ({shown or 'unknown rank'})",
                    file=path,
                    field="--input-shape",
                    fix=f"give a concrete shape, e.g. --input-shape {name}={_example_shape(dims)}"
                    " with the sizes your inputs have",
                )
            continue
        if len(dims) and len(dims) != len(given):
            raise ModelError(
                f"input {name!r} has rank {len(dims)} but the given shape "
                f"{'x'.join(map(str, given))} has rank {len(given)}",
                file=path,
                field="--input-shape",
                fix=f"give {len(dims)} dimensions",
            )
        for i, (d, g) in enumerate(zip(dims, given, strict=False)):
            if _is_fixed(d) and d.dim_value != g:
                raise ModelError(
                    f"input {name!r} dimension {i} is fixed to {d.dim_value} in the model, not {g}",
                    file=path,
                    field="--input-shape",
                    fix=f"use {d.dim_value} for dimension {i}",
                )
        value.type.tensor_type.ClearField("shape")
        for g in given:
            value.type.tensor_type.shape.dim.add().dim_value = g
    if input_shapes:
        # Shapes recorded for symbolic dims would now conflict with the concrete inputs.
        del proto.graph.value_info[:]
        for out in proto.graph.output:
            out.type.tensor_type.ClearField("shape")


def _is_fixed(dim: onnx.TensorShapeProto.Dimension) -> bool:
    """A dimension with a size. Some exporters write a dynamic one as ``-1`` (or ``0``)."""
    return dim.HasField("dim_value") and dim.dim_value > 0


def _example_shape(dims: Sequence[onnx.TensorShapeProto.Dimension]) -> str:
    """An ``--input-shape`` value to start from: fixed sizes as they are, a dynamic first
    (batch) dimension as 1, other dynamic ones by their symbolic name, e.g. ``1x3xHxW``."""
    return "x".join(
        str(d.dim_value) if _is_fixed(d) else "1" if i == 0 else (d.dim_param or f"D{i}")
        for i, d in enumerate(dims)
    )


def _infer_shapes(path: Path, proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(
            f"shape inference failed: {first}",
            file=path,
            field="--input-shape",
            fix="check that the given input shapes match what the model expects",
        ) from None


def _value_types(proto: onnx.ModelProto) -> dict[str, ValueType]:
    values: dict[str, ValueType] = {}
    g = proto.graph
    for v in [*g.input, *g.value_info, *g.output]:
        t = v.type.tensor_type
        if not t.HasField("shape") or not t.elem_type:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        if all(d >= 0 for d in dims):
            values[v.name] = ValueType(tuple(dims), _np_dtype(t.elem_type))
    return values


def _unshaped_values(proto: onnx.ModelProto, values: Mapping[str, ValueType]) -> list[str]:
    return [o for n in proto.graph.node for o in n.output if o and o not in values]


def _shapes_by_running(
    path: Path, proto: onnx.ModelProto, names: list[str]
) -> dict[str, ValueType]:
    """Shapes shape inference could not give (data-dependent ops), from one run on zeros."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.add().name = name
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        feeds = {
            i.name: np.zeros(
                [d.dim_value for d in i.type.tensor_type.shape.dim],
                dtype=_np_dtype(i.type.tensor_type.elem_type),
            )
            for i in _real_inputs(proto)
        }
        results = session.run(names, feeds)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(
            f"tensor shapes could not be inferred nor measured ({str(exc).splitlines()[0]})",
            file=path,
            fix="give static input shapes with --input-shape, or simplify the model",
        ) from None
    return {n: ValueType(tuple(r.shape), r.dtype.name) for n, r in zip(names, results, strict=True)}


def _np_dtype(elem_type: int) -> str:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name


def _spec(name: str, values: Mapping[str, ValueType]) -> TensorSpec:
    v = values[name]
    return TensorSpec(name=name, shape=v.shape, dtype=v.dtype)
