"""The model corpus: models of several families and exporters, built (never downloaded) into a
cache folder outside the repository, for the corpus benchmark and the pipeline tests.

Three kinds of source, none of which the core needs:

- PyTorch exports, made here from architectures with random weights: torchvision's (via
  ``torch.onnx.export``) and Ultralytics' YOLO11 (via :func:`qsplit.model.export.export_yolo`).
  Both need the ``yolo`` extra (torch); torchvision must import beside it.
- paddle2onnx exports with trained weights, shipped as files inside the ``rapidocr-onnxruntime``
  wheel (Apache-2.0, PaddleOCR's models). The files are copied out of the installed package,
  which is never imported (importing it pulls in OpenCV).
- A small CNN written with ``onnx.helper`` (:func:`helper_cnn`), a third "exporter" that needs
  nothing at all.

Every model gets a fixed input shape; a model whose file has dynamic inputs or an opset below
13 is also written as a :func:`~qsplit.model.pinned_copy`, which is the file the pipeline
runs (``deploy``/``run`` take no ``--input-shape`` yet, and per-channel int8 needs opset 13).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qsplit.errors import DependencyError, InputError
from qsplit.model._pinned import PER_CHANNEL_OPSET, pinned_copy

OPSET = 17
"""Opset of the torchvision exports, as for YOLO11 (qsplit.model.export.OPSET)."""

RAPIDOCR = "rapidocr-onnxruntime"


@dataclass(frozen=True)
class CorpusModel:
    """One model of the corpus: where it comes from and the shape it is run at."""

    name: str
    family: str
    exporter: str
    weights: str
    input_shapes: dict[str, tuple[int, ...]]
    make: Callable[[Path], None]
    """Writes the model's ONNX file (as its exporter made it) to the given path."""
    needs_torch: bool = False


@dataclass(frozen=True)
class BuiltModel:
    """A corpus model on disk: ``path`` is the file the pipeline runs (pinned when needed)."""

    spec: CorpusModel
    original: Path
    path: Path
    sha256: str

    @property
    def pinned(self) -> bool:
        return self.path != self.original


def _rapidocr_file(name: str) -> Callable[[Path], None]:
    def make(out: Path) -> None:
        try:
            distribution = importlib.metadata.distribution(RAPIDOCR)
        except importlib.metadata.PackageNotFoundError:
            raise DependencyError(
                f"the PaddleOCR models come from the {RAPIDOCR} package, which is not "
                f"installed. Fix: pip install '{RAPIDOCR}' (or qsplit's dev extra)"
            ) from None
        source = Path(str(distribution.locate_file(f"rapidocr_onnxruntime/models/{name}")))
        shutil.copyfile(source, out)

    return make


def _torchvision(builder: str, imgsz: int) -> Callable[[Path], None]:
    def make(out: Path) -> None:
        export_torchvision(builder, imgsz, out)

    return make


def _yolo(task: str, imgsz: int) -> Callable[[Path], None]:
    def make(out: Path) -> None:
        from qsplit.model.export import export_yolo

        export_yolo("yolo11n", task=task, imgsz=imgsz, out=out)

    return make


def _bundled_yolo11n(out: Path) -> None:
    from qsplit.assets import bundled_model_path

    shutil.copyfile(bundled_model_path("yolo11n"), out)


def _helper_cnn(out: Path) -> None:
    onnx.save(helper_cnn(), out)


_RANDOM = "random, BN recalibrated"
_YOLO_RANDOM = "random-rescaled"
_PADDLE = "trained (PaddleOCR)"
_TV = "PyTorch (torchvision, torch.onnx)"
_UL = "PyTorch (Ultralytics)"
_P2O = "paddle2onnx (rapidocr-onnxruntime)"

MODELS: tuple[CorpusModel, ...] = (
    CorpusModel(
        "yolo11n",
        "YOLO11 detect",
        _UL,
        _YOLO_RANDOM,
        {"images": (1, 3, 640, 640)},
        _bundled_yolo11n,
    ),
    CorpusModel(
        "yolo11n-seg",
        "YOLO11 segment",
        _UL,
        _YOLO_RANDOM,
        {"images": (1, 3, 640, 640)},
        _yolo("segment", 640),
        needs_torch=True,
    ),
    CorpusModel(
        "yolo11n-pose",
        "YOLO11 pose",
        _UL,
        _YOLO_RANDOM,
        {"images": (1, 3, 640, 640)},
        _yolo("pose", 640),
        needs_torch=True,
    ),
    CorpusModel(
        "yolo11n-cls",
        "YOLO11 classify",
        _UL,
        _YOLO_RANDOM,
        {"images": (1, 3, 224, 224)},
        _yolo("classify", 224),
        needs_torch=True,
    ),
    CorpusModel(
        "resnet50",
        "ResNet",
        _TV,
        _RANDOM,
        {"input": (1, 3, 224, 224)},
        _torchvision("resnet50", 224),
        needs_torch=True,
    ),
    CorpusModel(
        "mobilenet_v3_small",
        "MobileNetV3",
        _TV,
        _RANDOM,
        {"input": (1, 3, 224, 224)},
        _torchvision("mobilenet_v3_small", 224),
        needs_torch=True,
    ),
    CorpusModel(
        "efficientnet_b0",
        "EfficientNet",
        _TV,
        _RANDOM,
        {"input": (1, 3, 224, 224)},
        _torchvision("efficientnet_b0", 224),
        needs_torch=True,
    ),
    CorpusModel(
        "swin_t",
        "Swin Transformer",
        _TV,
        "random (LayerNorm: nothing to recalibrate)",
        {"input": (1, 3, 224, 224)},
        _torchvision("swin_t", 224),
        needs_torch=True,
    ),
    CorpusModel(
        "fcn_resnet50",
        "FCN segmentation",
        _TV,
        _RANDOM,
        {"input": (1, 3, 320, 320)},
        _torchvision("segmentation.fcn_resnet50", 320),
        needs_torch=True,
    ),
    CorpusModel(
        "ppocr-det",
        "PP-OCRv4 text detector",
        _P2O,
        _PADDLE,
        {"x": (1, 3, 640, 640)},
        _rapidocr_file("ch_PP-OCRv4_det_infer.onnx"),
    ),
    CorpusModel(
        "ppocr-rec",
        "PP-OCRv4 text recogniser",
        _P2O,
        _PADDLE,
        {"x": (1, 3, 48, 320)},
        _rapidocr_file("ch_PP-OCRv4_rec_infer.onnx"),
    ),
    CorpusModel(
        "ppocr-cls",
        "PP-OCR angle classifier",
        _P2O,
        _PADDLE,
        {"x": (1, 3, 48, 192)},
        _rapidocr_file("ch_ppocr_mobile_v2.0_cls_infer.onnx"),
    ),
    CorpusModel(
        "helper-cnn",
        "small branchy CNN",
        "onnx.helper (written by qsplit)",
        "random (seeded)",
        {"input": (1, 3, 64, 64)},
        _helper_cnn,
    ),
)


def corpus_model(name: str) -> CorpusModel:
    """The corpus model called ``name``."""
    for spec in MODELS:
        if spec.name == name:
            return spec
    raise InputError(
        f"no corpus model {name!r}",
        field="model",
        fix=f"use one of {', '.join(m.name for m in MODELS)}",
    )


def build(spec: CorpusModel, cache: Path) -> BuiltModel:
    """The model of ``spec`` in ``cache`` (made on first use, then reused)."""
    cache.mkdir(parents=True, exist_ok=True)
    original = cache / f"{spec.name}.onnx"
    if not original.exists():
        partial = original.with_suffix(f".{os.getpid()}.partial")  # two builders may race
        spec.make(partial)
        partial.replace(original)
    path = original
    if _needs_pinning(original, spec.input_shapes):
        path = cache / f"{spec.name}.pinned.onnx"
        if not path.exists():
            pinned_copy(original, path, spec.input_shapes)
    return BuiltModel(spec, original, path, hashlib.sha256(path.read_bytes()).hexdigest())


def _needs_pinning(path: Path, input_shapes: dict[str, tuple[int, ...]]) -> bool:
    model = onnx.load(path, load_external_data=False)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    shapes = {
        v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in model.graph.input
    }
    return opset < PER_CHANNEL_OPSET or any(shapes.get(n) != s for n, s in input_shapes.items())


def helper_cnn(seed: int = 0) -> onnx.ModelProto:
    """A small CNN (stem, two residual stages with a side branch, pooled classifier), written
    with ``onnx.helper``: no framework's naming, grouping or constant folding behind it. He
    initialisation keeps its activations near unit scale, so int8 noise is measurable."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []

    def conv(name: str, x: str, cin: int, cout: int, stride: int = 1) -> str:
        w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))
        weights.append(numpy_helper.from_array(w.astype(np.float32), f"{name}.w"))
        weights.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}.b"))
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.w", f"{name}.b"],
                [f"{name}.conv"],
                name=f"{name}/Conv",
                pads=[1, 1, 1, 1],
                strides=[stride, stride],
            )
        )
        nodes.append(helper.make_node("Relu", [f"{name}.conv"], [name], name=f"{name}/Relu"))
        return name

    x = conv("stem", "input", 3, 16, stride=2)
    for stage, channels in enumerate((16, 32)):
        a = conv(f"s{stage}.a", x, 16, channels, stride=2)
        b = conv(f"s{stage}.b", a, channels, channels)
        side = conv(f"s{stage}.side", a, channels, channels)
        nodes.append(helper.make_node("Add", [b, side], [f"s{stage}"], name=f"s{stage}/Add"))
        x = f"s{stage}"
        if stage == 0:
            x = conv("s0.out", x, channels, 16)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="head/Pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], name="head/Flatten"))
    fc = (rng.standard_normal((32, 10)) * np.sqrt(1 / 32)).astype(np.float32)
    weights.append(numpy_helper.from_array(fc, "head.w"))
    nodes.append(helper.make_node("MatMul", ["flat", "head.w"], ["logits"], name="head/MatMul"))
    graph = helper.make_graph(
        nodes,
        "helper_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export_torchvision(builder: str, imgsz: int, out: Path, seed: int = 0) -> None:
    """Export torchvision's ``builder`` (no pretrained weights) at ``1x3ximgszximgsz``.

    Random weights are made usable by recalibrating every BatchNorm's running statistics on
    the bundled sample images (one train-mode pass with a cumulative average, then eval):
    each BN then normalises what it really sees, so activations stay near unit scale instead of
    growing or vanishing with depth. Models without BN (the transformers) use LayerNorm, which
    needs no statistics.
    """
    torch, models = _import_torchvision()
    from qsplit.assets import sample_images
    from qsplit.model.export import calibration_batch

    torch.manual_seed(seed)
    # "segmentation.fcn_resnet50" names a submodule's builder; those default to ImageNet
    # backbone weights, which would be downloaded, so the backbone is asked for without.
    module, _, function = builder.rpartition(".")
    options = {"weights": None, **({"weights_backbone": None} if module else {})}
    net = getattr(getattr(models, module) if module else models, function)(**options)
    batch = torch.from_numpy(calibration_batch(sample_images(), imgsz, seed=seed))
    _recalibrate_batchnorm(torch, net, batch)
    example = batch[:1]
    torch.onnx.export(
        net,
        (example,),
        str(out),
        input_names=["input"],
        output_names=["output"],
        opset_version=OPSET,
        dynamo=False,
    )


def _recalibrate_batchnorm(torch: Any, net: Any, batch: Any) -> None:
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the pass
    if norms:
        net.train()
        with torch.no_grad():
            net(batch)
    net.eval()


def _import_torchvision() -> tuple[Any, Any]:
    try:
        import torch  # noqa: TID251 - optional, bench-side export only
        from torchvision import models
    except (ImportError, RuntimeError) as exc:
        raise DependencyError(
            f"torchvision exports need torch and a torchvision that imports beside it: {exc}. "
            "Fix: pip install torch torchvision (matching releases)"
        ) from exc
    return torch, models
