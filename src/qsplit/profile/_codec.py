"""What sending a tensor cheaper costs and saves: codec times per node, compression per tensor.

**Codec times** (:func:`measure_codec_times`) are measured on the node, by the same path as its
block timings (:func:`qsplit.profile.profile_node`, so agents and ``qsplit profile`` agree), for
what the runtime actually executes: the fp16 casts and the int8 quantize/dequantize are ONNX
Runtime nodes inside the components (timed here as one-node ORT sessions with the runtime's
settings), and lz4/zstd are the wire's own functions (:mod:`qsplit._codecs`). Each operation is
timed at a few sizes and fitted as ``fixed_s + per_byte_s × input bytes`` (least squares, both
kept ≥ 0). The data is a ReLU-like activation (half zeros, the rest half-normal), because codec
speed depends on content and that is what crosses links in CNNs. An emulated node's times are
this host's × its padding factor, like its compute.

**Compression ratios** (:func:`measure_compression`) are those of each crossing tensor's values
in the reference run (``profile/_reference.py``), encoded as each link precision would send
them, then compressed with each codec: the planner's bytes on the wire are then the bytes of a
typical input.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import lz4
import numpy as np
import onnx
from onnx import TensorProto, helper

from qsplit._codecs import CODECS, ZSTD_LEVEL, compress, decompress
from qsplit.model import LayerGraph, LoadedModel
from qsplit.profile._profiler import CalibrationSource, calibration_ranges
from qsplit.profile._reference import reference_inputs, reference_values
from qsplit.profile._timing import SessionSettings, Statistic, Summary, make_session
from qsplit.profile._types import CodecCost, CodecTimes, CompressionTable
from qsplit.quant import Calibration, link_candidates, link_quant_params

SIZES_BYTES = (2**14, 2**18, 2**22)
"""fp32 input sizes each operation is timed at: 16 KiB (fixed cost), 256 KiB, 4 MiB (per-byte
cost; YOLO11n's crossing tensors are 0.1–6 MB)."""
REPETITIONS = 7


def measure_codec_times(
    *,
    padding_factor: float = 1.0,
    statistic: Statistic = "median",
    settings: SessionSettings | None = None,
    repetitions: int = REPETITIONS,
    seed: int = 0,
) -> CodecTimes:
    """Encode and decode cost of every codec operation here, × ``padding_factor``."""
    operations = _operations(settings or SessionSettings())
    rng = np.random.default_rng(seed)
    encode_points: dict[str, list[tuple[int, float]]] = {op: [] for op in operations}
    decode_points: dict[str, list[tuple[int, float]]] = {op: [] for op in operations}
    for size in SIZES_BYTES:
        x = _activation(rng, size // 4)
        for operation, (encode, decode) in operations.items():
            sent = encode(x)
            encode_s = _timed(functools.partial(encode, x), repetitions, statistic)
            decode_s = _timed(functools.partial(decode, sent, x.nbytes), repetitions, statistic)
            encode_points[operation].append((x.nbytes, encode_s))
            decode_points[operation].append((_nbytes(sent), decode_s))
    return CodecTimes(
        {op: _fit(points, padding_factor) for op, points in encode_points.items()},
        {op: _fit(points, padding_factor) for op, points in decode_points.items()},
    )


Encode = Callable[[np.ndarray], Any]
Decode = Callable[[Any, int], Any]


def _operations(settings: SessionSettings) -> dict[str, tuple[Encode, Decode]]:
    """Operation → (encode of an fp32 array, decode of what it produced given the fp32 size)."""
    cast16 = _one_node("Cast", TensorProto.FLOAT, TensorProto.FLOAT16, settings, to=10)
    cast32 = _one_node("Cast", TensorProto.FLOAT16, TensorProto.FLOAT, settings, to=1)
    quantize = _one_node("QuantizeLinear", TensorProto.FLOAT, TensorProto.UINT8, settings)
    dequantize = _one_node("DequantizeLinear", TensorProto.UINT8, TensorProto.FLOAT, settings)
    operations: dict[str, tuple[Encode, Decode]] = {
        "cast16": (cast16, lambda sent, _: cast32(sent)),
        "int8": (quantize, lambda sent, _: dequantize(sent)),
    }
    for codec in CODECS:
        operations[codec] = (
            functools.partial(_compress, codec),
            functools.partial(decompress, codec),
        )
    return operations


def _compress(codec: str, value: np.ndarray) -> bytes:
    return compress(codec, memoryview(value).cast("B"))


def _one_node(
    op: str, source: int, target: int, settings: SessionSettings, **attributes: int
) -> Callable[[np.ndarray], np.ndarray]:
    """A one-node ORT model from a 1-D tensor of ``source`` type to ``target``, as a function;
    quantize/dequantize get a per-tensor scale and zero point like the link surgery's."""
    inputs = ["x"]
    initializers = []
    if op != "Cast":
        initializers = [
            helper.make_tensor("scale", TensorProto.FLOAT, [], [0.02]),
            helper.make_tensor("zero_point", TensorProto.UINT8, [], [0]),
        ]
        inputs += ["scale", "zero_point"]
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"], **attributes)],
        op,
        [helper.make_tensor_value_info("x", source, ["n"])],
        [helper.make_tensor_value_info("y", target, ["n"])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    session = make_session(model, settings)
    return lambda value: session.run(None, {"x": value})[0]


def _activation(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.maximum(rng.standard_normal(n, dtype=np.float32), 0.0)


def _nbytes(value: np.ndarray | bytes) -> int:
    return value.nbytes if isinstance(value, np.ndarray) else len(value)


def _timed(run: Callable[[], Any], repetitions: int, statistic: Statistic) -> float:
    run()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return Summary.of(times).value(statistic)


def _fit(points: list[tuple[int, float]], padding_factor: float) -> CodecCost:
    """Least-squares ``fixed + per_byte × bytes`` through ``points``, neither below 0."""
    sizes = np.array([p[0] for p in points], dtype=float)
    times = np.array([p[1] for p in points], dtype=float)
    per_byte, fixed = np.polyfit(sizes, times, 1)
    per_byte = max(float(per_byte), 0.0)
    fixed = max(float(fixed), 0.0)
    return CodecCost(fixed * padding_factor, per_byte * padding_factor)


def encoders(calibration: Calibration | None) -> dict[str, Callable[[str, np.ndarray], np.ndarray]]:
    """Link precision → how a tensor's values are encoded for the wire, as the link surgery
    does (fp16 cast; affine uint8 with the calibration range); int8 only with calibration."""
    result: dict[str, Callable[[str, np.ndarray], np.ndarray]] = {
        "fp32": lambda _, v: v.astype(np.float32, copy=False),
        "fp16": lambda _, v: v.astype(np.float16),
    }
    if calibration is not None:

        def int8(tensor: str, value: np.ndarray) -> np.ndarray:
            scale, zero_point = link_quant_params(calibration, tensor)
            q = np.rint(value.astype(np.float32) / np.float32(scale)) + zero_point
            return np.clip(q, 0, 255).astype(np.uint8)

        result["int8"] = int8
    return result


def measure_compression(
    graph: LayerGraph,
    values: Mapping[str, np.ndarray],
    calibration: Calibration | None = None,
    tensors: Collection[str] | None = None,
) -> CompressionTable:
    """Compressed/raw size of each crossing tensor (default: every link candidate of ``graph``
    with a value in ``values``, the reference run) at each link precision and codec.

    int8 ratios need ``calibration`` (its ranges give the link quantization) and are left out
    for tensors it has no range for; the table then simply lacks them.
    """
    names = [t for t in (tensors or link_candidates(graph)) if t in values]
    ratios: dict[tuple[str, str, str], float] = {}
    for tensor in names:
        for precision, encode in encoders(calibration).items():
            if precision == "int8" and tensor not in calibration.ranges:  # type: ignore[union-attr]
                continue
            raw = np.ascontiguousarray(encode(tensor, values[tensor])).tobytes()
            if not raw:
                continue
            for codec in CODECS:
                ratios[(tensor, precision, codec)] = len(compress(codec, raw)) / len(raw)
    settings = {"input": "reference", "lz4": lz4.__version__, "zstd_level": ZSTD_LEVEL}
    return CompressionTable(graph.model.sha256, ratios, settings)


def compression_table(
    model: LoadedModel, graph: LayerGraph, calibration: CalibrationSource = None
) -> CompressionTable:
    """:func:`measure_compression` of ``graph``'s link candidates on the reference run (see
    :func:`qsplit.profile.reference_inputs`), int8 encoded with the ranges profiling
    calibrates with: what ``qsplit profile --compression`` writes."""
    values = reference_values(model, graph, reference_inputs(model, calibration))
    ranges, source = calibration_ranges(model, values, calibration)
    table = measure_compression(graph, values, ranges)
    return dataclasses.replace(table, settings={**table.settings, "calibration_inputs": source})
