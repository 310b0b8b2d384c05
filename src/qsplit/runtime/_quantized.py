"""The model a plan with quantized blocks or link precision deploys, split where it is priced.

A plan's ``quantized`` blocks must run quantized on the agents, and their outputs must cross
links as int8 (that is what the planner priced). So the deployment is built from
:class:`qsplit.quant.Quantizer`'s model of exactly those blocks, seen through
:func:`qsplit.quant.quantized_split_view`, whose cut falls after each quantized producer's
QuantizeLinear. The plan's ``link_precision`` tensors are then encoded on that model
(:func:`qsplit.quant.link_quantized_model`), so they too cross as fp16 or int8. Calibration
is the slow step (seconds on YOLO11n), so ranges computed from an image folder are cached per
model and per folder content.
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
from qsplit.model import LayerGraph, LoadedModel, Preprocess, resolve_model_spec
from qsplit.quant import (
    Calibration,
    Quantizer,
    calibrate,
    image_feeds,
    link_quantized_model,
    quantized_split_view,
)
from qsplit.runtime._wire import Quant

CalibrationSource = Calibration | str | Path | None
"""Ranges already computed, or an image folder to calibrate on (``None``: the bundled
sample images)."""


def quantized_model(
    model: LoadedModel,
    graph: LayerGraph,
    blocks: Collection[str],
    calibration: CalibrationSource = None,
    preprocess: Preprocess | None = None,
    link_precision: Mapping[str, str] | None = None,
) -> tuple[LoadedModel, LayerGraph]:
    """``model`` with ``blocks`` in static int8 and the tensors of ``link_precision`` sent over
    links as fp16 or int8, and its LayerGraph with ``graph``'s block names, ready for
    :func:`qsplit.partition.components`.

    The two compose: the blocks are quantized first (their outputs then cross as int8), and the
    link encodings go on that model (:func:`qsplit.quant.link_quantized_model`), so a plan with
    both deploys exactly what it priced. Calibration (needed for quantized blocks and int8
    links) uses images prepared by ``preprocess``; without it, by the description beside the
    model file (``<stem>.preprocess.yaml``) or YOLO's letterbox to [0, 1].
    """
    links = {t: p for t, p in (link_precision or {}).items() if p != "fp32"}
    unknown = sorted(set(blocks) - set(graph.block_names))
    if unknown:
        raise InputError(
            f"{len(unknown)} quantized block(s) are not in the model, first {unknown[0]!r}",
            file=graph.model.path,
            field="quantized",
            fix="quantize blocks of the model the plan was made for",
        )
    if not isinstance(calibration, Calibration) and (blocks or "int8" in links.values()):
        recipe = preprocess or resolve_model_spec(model.info.path).preprocess
        calibration = _calibrate(model, calibration, recipe)
    # fp16 links alone need no ranges, and no calibration run.
    ranges = (
        calibration if isinstance(calibration, Calibration) else Calibration(graph.model.sha256, {})
    )
    if blocks:
        quantized = Quantizer(model, graph, ranges).quantize(blocks)
        model, graph = quantized_split_view(quantized, graph, blocks)
    if links:
        model, graph = link_quantized_model(model, graph, links, ranges)
    return model, graph


def _calibrate(
    model: LoadedModel, folder: str | Path | None, preprocess: Preprocess
) -> Calibration:
    folder = Path(folder) if folder is not None else sample_images_dir()
    feeds = image_feeds(model, folder, preprocess=preprocess)
    digest = hashlib.sha256()
    for feed in feeds:
        for array in feed.values():
            digest.update(array.tobytes())
    name = f"{model.info.sha256[:16]}-{digest.hexdigest()[:16]}.json"
    return calibrate(model, feeds, cache=_cache_dir() / name, preprocess=preprocess)


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
