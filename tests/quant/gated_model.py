"""A small model that only sees inputs below 0: fed [0, 1] images its output is exactly 0.

It stands for a model given the wrong preprocessing (a PaddleOCR detector fed letterboxed
[0, 1] photos answered ~0 everywhere); with mean-subtracted inputs it answers normally.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

CONVS = 7
"""Blocks model.0 … model.6 can be quantized; model.7 produces the output."""


def _gated_model() -> onnx.ModelProto:
    """1×3×16×16 → 1×4×16×16. ``model.0`` is Relu(−x) then a convolution; the others are
    convolutions without activation, so quantization noise of different blocks adds up."""
    rng = np.random.default_rng(0)
    weights, nodes = (
        [],
        [
            helper.make_node("Neg", ["images"], ["negated"], "/model.0/Neg"),
            helper.make_node("Relu", ["negated"], ["x0"], "/model.0/Relu"),
        ],
    )
    for block in range(CONVS + 1):
        channels_in = 3 if block == 0 else 8
        channels_out = 4 if block == CONVS else 8
        w = rng.standard_normal((channels_out, channels_in, 3, 3)) / np.sqrt(9 * channels_in)
        weights.append(numpy_helper.from_array(w.astype(np.float32), f"w{block}"))
        target = "output" if block == CONVS else f"x{block + 1}"
        nodes.append(
            helper.make_node(
                "Conv", [f"x{block}", f"w{block}"], [target], f"/model.{block}/Conv", pads=[1] * 4
            )
        )
    graph = helper.make_graph(
        nodes,
        "gated",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 16, 16])],
        weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def gated_model(folder: Path) -> Path:
    """The model saved as ``folder/gated.onnx`` beside an ``images`` folder of three random
    16×16 colour images."""
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(images / f"{i}.png")
    path = folder / "gated.onnx"
    onnx.save(_gated_model(), path)
    return path
