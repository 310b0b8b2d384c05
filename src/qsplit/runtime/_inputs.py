"""Request inputs for a deployment: images from a file or folder, or seeded random tensors.

Images are prepared exactly as calibration prepares them (:func:`qsplit.quant.load_image` with
the model's :class:`qsplit.model.Preprocess`), so a quantized plan runs on inputs like those its
ranges came from. They are loaded one request
at a time: a folder of thousands of frames never sits in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from qsplit.errors import InputError
from qsplit.model import Preprocess, TensorSpec, image_dims
from qsplit.quant import load_image

Feeds = dict[str, np.ndarray]


def random_requests(specs: Sequence[TensorSpec], count: int, seed: int = 0) -> Iterator[Feeds]:
    """``count`` feeds of uniform [0, 1) values for every input, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield {s.name: rng.random(s.shape).astype(s.dtype) for s in specs}


def image_requests(
    specs: Sequence[TensorSpec], source: Path, preprocess: Preprocess | None = None
) -> Iterator[Feeds]:
    """One feed per image of ``source`` (an image, or a folder: its images sorted by name),
    prepared by ``preprocess`` (default: YOLO's letterbox to [0, 1]).

    Raises :class:`InputError` at once, before any request, when the model has no single
    image input of batch 1 or ``source`` holds no image; a file that does not decode is an
    InputError naming it when its turn comes.
    """
    preprocess = preprocess or Preprocess()
    spec, (channels, height, width) = _image_input(specs, preprocess)
    images = _images(source)
    dtype = np.dtype(spec.dtype)
    return (
        {spec.name: load_image(p, channels, height, width, preprocess)[None].astype(dtype)}
        for p in images
    )


def _image_input(
    specs: Sequence[TensorSpec], preprocess: Preprocess
) -> tuple[TensorSpec, tuple[int, int, int]]:
    spec = specs[0] if len(specs) == 1 else None
    dims = None if spec is None else image_dims(preprocess, spec.shape)
    if (
        spec is not None
        and dims is not None
        and spec.shape[0] == 1
        and spec.dtype in ("float32", "float16")
    ):
        problem = preprocess.channel_problem(dims[0])
        if problem is not None:
            raise InputError(
                problem,
                field="--preprocess",
                fix="give one value, or one per channel of the model's input",
            )
        return spec, dims
    axes = "1×C×H×W" if preprocess.layout == "NCHW" else "1×H×W×C"
    shown = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))} {s.dtype}" for s in specs)
    raise InputError(
        f"images need a model with one {axes} float input (C = 1 or 3); this one has {shown}",
        field="--input",
        fix="use --random N for this model, or give its layout with --preprocess",
    )


def _images(source: Path) -> list[Path]:
    from PIL import Image

    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InputError("not found", file=source, field="--input", fix="check the path")
    suffixes = Image.registered_extensions()
    images = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not images:
        raise InputError(
            "no images in this folder", file=source, field="--input", fix="pass JPEG/PNG files"
        )
    return images
