"""The reference run: every tensor a block or component reads, from one run of the whole model.

A block or component is only ever timed or warmed up on values it could receive in the whole
model. Random tensors are not such values: a component whose Resize scales or Reshape shape come
from another component is handed nonsense sizes and ONNX Runtime raises (or times a different
computation). So profiling (``qsplit profile``, an agent's ``profile``) and deploy-time timing on
an emulated node all feed the tensors of one run of the whole model on real input: the first
calibration image for an image model.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import onnxruntime as ort

from qsplit.errors import InputError
from qsplit.model import LayerGraph, LoadedModel, Preprocess, resolve_model_spec
from qsplit.partition import Component, ComponentExtractor
from qsplit.quant import Calibration, image_feeds, takes_images

Feeds = dict[str, np.ndarray]


def reference_inputs(
    model: LoadedModel,
    calibration: Calibration | str | Path | None = None,
    seed: int = 0,
    preprocess: Preprocess | None = None,
) -> Feeds:
    """The model inputs of the reference run.

    The first of ``calibration``'s inputs (ranges computed in memory keep them), else the first
    images (one per batch item) of ``calibration`` (a folder), else, for an image model, the
    first bundled sample images, prepared by ``preprocess`` (default: the model's description
    beside its file, else YOLO's letterbox). A model that takes no images and has no calibration
    inputs gets seeded standard normal floats and zero integers (indices and sizes must stay
    valid): without real input that is the best there is.
    """
    from qsplit.assets import sample_images_dir

    if isinstance(calibration, Calibration):
        if calibration.feeds:
            return dict(calibration.feeds[0])
        calibration = None
    recipe = preprocess or resolve_model_spec(model.info.path).preprocess
    if calibration is not None or takes_images(model, recipe):
        folder = calibration or sample_images_dir()
        batch = model.info.inputs[0].shape[0] if takes_images(model, recipe) else 1
        feeds = image_feeds(model, folder, limit=batch, preprocess=recipe)
        if not feeds:
            raise InputError(
                f"fewer images than the batch size {batch}",
                file=folder,
                field="--calib",
                fix=f"put at least {batch} images there",
            )
        return feeds[0]
    rng = np.random.default_rng(seed)
    feeds: Feeds = {}
    for spec in model.info.inputs:
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
        else:
            feeds[spec.name] = np.zeros(spec.shape, dtype=dtype)
    return feeds


def reference_values(
    model: LoadedModel,
    graph: LayerGraph,
    inputs: Feeds,
    tensors: Collection[str] | None = None,
) -> Feeds:
    """``inputs`` and the ``tensors`` of ``graph`` (default: every one a block produces) from
    one run of the whole model on them, with ORT's optimisations off so every tensor is the
    unoptimised graph's."""
    produced = [t.name for t in graph.tensors if t.producer is not None]
    wanted = tuple(produced if tensors is None else (t for t in produced if t in set(tensors)))
    values = {name: inputs[name] for name in (s.name for s in graph.model.inputs)}
    if not wanted:
        return values
    everything = Component(
        index=0, node="local", blocks=graph.block_names, inputs=tuple(values), outputs=wanted
    )
    whole = ComponentExtractor(model, graph).extract(everything)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(
        whole.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    values.update(zip(wanted, session.run(list(wanted), values), strict=True))
    return values
