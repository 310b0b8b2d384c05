"""The model a plan with quantized blocks deploys: the real QDQ int8 model, split at int8.

A plan's ``quantized`` blocks must run quantized on the agents, and their outputs must cross
links as int8 (that is what the planner priced). So the deployment is built from
:class:`qsplit.quant.Quantizer`'s model of exactly those blocks, seen through
:func:`qsplit.quant.quantized_split_view`, whose cut falls after each quantized producer's
QuantizeLinear. Calibration is the slow step (seconds on YOLO11n), so ranges computed from an
image folder are cached per model and per folder content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

import onnx
from onnx import numpy_helper

from qsplit.assets import sample_images_dir
from qsplit.errors import InputError
from qsplit.model import LayerGraph, LoadedModel
from qsplit.quant import Calibration, Quantizer, calibrate, image_feeds, quantized_split_view
from qsplit.runtime._wire import Quant

CalibrationSource = Calibration | str | Path | None
"""Ranges already computed, or an image folder to calibrate on (``None``: the bundled
sample images)."""


def quantized_model(
    model: LoadedModel,
    graph: LayerGraph,
    blocks: Collection[str],
    calibration: CalibrationSource = None,
) -> tuple[LoadedModel, LayerGraph]:
    """``model`` with ``blocks`` in static int8, and its LayerGraph with ``graph``'s block names,
    ready for :func:`qsplit.partition.components`."""
    unknown = sorted(set(blocks) - set(graph.block_names))
    if unknown:
        raise InputError(
            f"{len(unknown)} quantized block(s) are not in the model, first {unknown[0]!r}",
            file=graph.model.path,
            field="quantized",
            fix="quantize blocks of the model the plan was made for",
        )
    ranges = calibration if isinstance(calibration, Calibration) else _calibrate(model, calibration)
    quantized = Quantizer(model, graph, ranges).quantize(blocks)
    return quantized_split_view(_one_reader_per_dequantize(quantized), graph, blocks)


def _one_reader_per_dequantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every DequantizeLinear read by several nodes copied once per reader.

    The split view gives a DequantizeLinear to (the block of) its reader, so that the int8
    tensor is what crosses a link; a DequantizeLinear shared by readers on different nodes
    would make its float output cross instead (YOLO11's ``model.4`` output feeds ``model.5``
    and a later Concat). Copies compute the same values, and ORT makes the same copies itself
    before fusing QDQ node units.
    """
    graph = model.graph
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in dict.fromkeys(node.input):
            readers.setdefault(name, []).append(index)
    outputs = {o.name for o in graph.output}
    shared = {
        node.output[0]
        for node in graph.node
        if node.op_type == "DequantizeLinear"
        and len(readers.get(node.output[0], ())) > 1
        and node.output[0] not in outputs
    }
    nodes = []
    for index, node in enumerate(graph.node):
        if node.output and node.output[0] in shared:
            for reader in readers[node.output[0]]:
                nodes.append(_renamed(node, name=f"{node.name}.{reader}", output=f".{reader}"))
            continue
        nodes.append(_renamed(node, inputs={t: f"{t}.{index}" for t in node.input if t in shared}))
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result


def _renamed(
    node: onnx.NodeProto,
    *,
    name: str | None = None,
    output: str = "",
    inputs: Mapping[str, str] | None = None,
) -> onnx.NodeProto:
    """A copy of ``node``, renamed, with ``output`` appended to its first output's name and
    its inputs renamed by ``inputs``."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = name or node.name
    copy.output[0] += output
    copy.input[:] = [(inputs or {}).get(t, t) for t in node.input]
    return copy


def _calibrate(model: LoadedModel, folder: str | Path | None) -> Calibration:
    folder = Path(folder) if folder is not None else sample_images_dir()
    feeds = image_feeds(model, folder)
    digest = hashlib.sha256()
    for feed in feeds:
        for array in feed.values():
            digest.update(array.tobytes())
    name = f"{model.info.sha256[:16]}-{digest.hexdigest()[:16]}.json"
    return calibrate(model, feeds, cache=_cache_dir() / name)


def _cache_dir() -> Path:
    """``$XDG_CACHE_HOME/qsplit/calibration`` (default ``~/.cache``)."""
    path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "qsplit", "calibration")
    path.mkdir(parents=True, exist_ok=True)
    return path


def quant_params(model: onnx.ModelProto, tensors: Iterable[str]) -> dict[str, Quant]:
    """Scale and zero point of each of ``tensors`` that a QuantizeLinear with per-tensor
    constant parameters produces: what travels beside the int8 tensor on the wire."""
    wanted = set(tensors)
    constants = {t.name: t for t in model.graph.initializer}
    params = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.output[0] not in wanted:
            continue
        scale = constants.get(node.input[1])
        zero = constants.get(node.input[2]) if len(node.input) > 2 else None
        if scale is None or zero is None:
            continue
        scale_value, zero_value = numpy_helper.to_array(scale), numpy_helper.to_array(zero)
        if scale_value.size == 1 and zero_value.size == 1:
            params[node.output[0]] = Quant(float(scale_value.item()), int(zero_value.item()))
    return params
