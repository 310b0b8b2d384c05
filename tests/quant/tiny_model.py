"""A tiny image classifier for command-line tests of ``qsplit noise`` and ``qsplit profile``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image


def _tiny_classifier() -> onnx.ModelProto:
    """1×3×32×32 image → 10 classes. Blocks model.0 … model.5: four convolutions that can be
    quantized, ``model.1`` a lone Neg that cannot, and ``model.5`` the head (model output)."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)

    def conv(block: int, source: str, target: str, w: str, stride: int = 1) -> list:
        return [
            helper.make_node(
                "Conv",
                [source, w],
                [f"c{block}"],
                f"/model.{block}/Conv",
                pads=[1] * 4,
                strides=[stride] * 2,
            ),
            helper.make_node("Relu", [f"c{block}"], [target], f"/model.{block}/Relu"),
        ]

    nodes = [
        *conv(0, "images", "a0", "w0"),
        helper.make_node("Neg", ["a0"], ["a1"], "/model.1/Neg"),
        *conv(2, "a1", "a2", "w2"),
        *conv(3, "a2", "a3", "w3", stride=2),
        *conv(4, "a3", "a4", "w4"),
        helper.make_node("GlobalAveragePool", ["a4"], ["g"], "/model.5/GlobalAveragePool"),
        helper.make_node("Flatten", ["g"], ["f"], "/model.5/Flatten"),
        helper.make_node("Gemm", ["f", "wf"], ["logits"], "/model.5/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [
            weight("w0", 8, 3, 3, 3),
            weight("w2", 8, 8, 3, 3),
            weight("w3", 16, 8, 3, 3),
            weight("w4", 16, 16, 3, 3),
            weight("wf", 10, 16),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def tiny_classifier(folder: Path) -> Path:
    """The tiny classifier saved as ``folder/tiny.onnx``, beside an ``images`` folder of three
    images unlike its input: 50×20 and 32×32 colour, 9×70 grey (all are letterboxed)."""
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i, (size, mode) in enumerate([((50, 20), "RGB"), ((32, 32), "RGB"), ((9, 70), "L")]):
        pixels = rng.integers(0, 256, (size[1], size[0], 3 if mode == "RGB" else 1), np.uint8)
        Image.fromarray(pixels.squeeze()).convert(mode).save(images / f"{i}.png")
    path = folder / "tiny.onnx"
    onnx.save(_tiny_classifier(), path)
    return path
