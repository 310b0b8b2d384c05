"""Calibration: observed activation ranges of a model on sample inputs, computed once.

Static int8 needs, for every activation tensor, the range it takes on realistic inputs. Running
the model on the calibration images is the slow part of post-training quantization (seconds on a
detector); quantizing a subset of blocks afterwards only needs the ranges. So ranges are computed
once per model and reused for every subset: in memory, and optionally in a JSON file keyed by the
model's sha256 so a second ``qsplit noise`` run on the same model skips the images altogether.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from qsplit._jsonio import read_json, write_json
from qsplit.errors import InputError, SchemaError
from qsplit.model import LoadedModel, Preprocess, TensorSpec, image_dims, preprocess_image

CALIBRATION_KIND = "calibration-ranges"
SCHEMA_VERSION = 1
DEFAULT_PREPROCESS = Preprocess()
"""YOLO's: letterbox with grey 114, RGB, N×C×H×W, [0, 1]."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

Feeds = dict[str, np.ndarray]


# -- images -------------------------------------------------------------------------------------
def takes_images(model: LoadedModel, preprocess: Preprocess = DEFAULT_PREPROCESS) -> bool:
    """Whether ``model`` has the single float image input (1 or 3 channels, in the recipe's
    layout) that images can feed."""
    return _image_spec(model, preprocess) is not None


def _image_spec(model: LoadedModel, preprocess: Preprocess) -> TensorSpec | None:
    inputs = model.info.inputs
    spec = inputs[0] if len(inputs) == 1 else None
    if (
        spec is None
        or image_dims(preprocess, spec.shape) is None
        or spec.dtype not in ("float32", "float16")
    ):
        return None
    return spec


def image_input(
    model: LoadedModel, preprocess: Preprocess = DEFAULT_PREPROCESS
) -> tuple[TensorSpec, tuple[int, int, int]]:
    """The model's single image input and its channels, height and width, or an InputError
    saying why images cannot be fed to it."""
    spec = _image_spec(model, preprocess)
    if spec is None:
        inputs = model.info.inputs
        shown = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))} {s.dtype}" for s in inputs)
        axes = "N×C×H×W" if preprocess.layout == "NCHW" else "N×H×W×C"
        raise InputError(
            f"calibration images need one {axes} float input with 1 or 3 channels; the model "
            f"has {shown}",
            file=model.info.path,
            field="--calib",
            fix="give the model's layout in its preprocessing file (--preprocess), or "
            "calibrate from arrays with qsplit.quant.calibrate(model, feeds)",
        )
    dims = image_dims(preprocess, spec.shape)
    assert dims is not None  # _image_spec checked it
    problem = preprocess.channel_problem(dims[0])
    if problem is not None:
        raise InputError(
            problem,
            file=model.info.path,
            field="--preprocess",
            fix="give one value, or one per channel of the model's input",
        )
    if preprocess.size is not None and preprocess.size != dims[1:]:
        raise InputError(
            f"the preprocessing resizes to {preprocess.size[0]}x{preprocess.size[1]} but the "
            f"model's input {spec.name} is {dims[1]}x{dims[2]}",
            file=model.info.path,
            field="preprocess.size",
            fix="fix the size in the preprocessing file, or give the model that size with "
            "--input-shape",
        )
    return spec, dims


def load_image(
    path: Path,
    channels: int,
    height: int,
    width: int,
    preprocess: Preprocess = DEFAULT_PREPROCESS,
) -> np.ndarray:
    """One image file as a float32 input of the model (C×H×W or H×W×C, see
    :func:`qsplit.model.preprocess_image`).

    Any source size is accepted; the default letterboxes to [0, 1] as YOLO does at inference,
    so the ranges seen here are the deployed ones.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return preprocess_image(img, preprocess, channels, height, width)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(
            f"cannot decode image ({exc.__class__.__name__}: {exc})",
            file=path,
            field="--calib",
            fix="remove the file from the calibration folder or replace it with a JPEG/PNG",
        ) from None


def image_feeds(
    model: LoadedModel,
    folder: str | Path,
    limit: int | None = None,
    preprocess: Preprocess = DEFAULT_PREPROCESS,
) -> list[Feeds]:
    """Feeds for ``model`` from the images in ``folder`` (sorted by name, at most ``limit``),
    prepared by ``preprocess``.

    Raises :class:`InputError` for a missing or empty folder and for a file that is not a
    decodable image, naming the file, rather than calibrating on fewer images than asked.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(
            "calibration folder not found", file=folder, field="--calib", fix="check the path"
        )
    if not folder.is_dir():
        raise InputError(
            "not a folder", file=folder, field="--calib", fix="give the folder holding the images"
        )
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise InputError(
            f"cannot read the calibration folder ({exc.strerror})",
            file=folder,
            field="--calib",
            fix="check its permissions",
        ) from None
    if not paths:
        raise InputError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in the calibration folder",
            file=folder,
            field="--calib",
            fix="put a few representative images there, or omit --calib for the bundled samples",
        )
    spec, (c, h, w) = image_input(model, preprocess)
    n = spec.shape[0]
    arrays = [load_image(p, c, h, w, preprocess) for p in paths[:limit]]
    dtype = np.dtype(spec.dtype)
    return [
        {spec.name: np.stack(arrays[i : i + n]).astype(dtype)}
        for i in range(0, len(arrays) - n + 1, n)
    ]


# -- ranges -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """Activation ranges (min, max per tensor) of one model, and the inputs they came from."""

    model_sha256: str
    ranges: dict[str, tuple[float, float]]
    preprocess: Preprocess = DEFAULT_PREPROCESS
    """How the calibration images were prepared: ranges of other inputs are not reusable."""
    feeds: tuple[Feeds, ...] = ()
    """The calibration inputs, kept in memory because the noise model evaluates on them too;
    empty when loaded from a cache file."""

    def tensors_data(self) -> object:
        """The ranges as ORT's ``TensorsData`` (MinMax), as its quantizers expect them."""
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

        return TensorsData(
            CalibrationMethod.MinMax,
            {
                name: TensorData(lowest=np.float32(lo), highest=np.float32(hi))
                for name, (lo, hi) in self.ranges.items()
            },
        )

    def save(self, path: str | Path) -> None:
        body = {
            "model": {"sha256": self.model_sha256},
            "preprocess": self.preprocess.to_dict(),
            "method": "minmax",
            "ranges": {n: [lo, hi] for n, (lo, hi) in self.ranges.items()},
        }
        write_json(path, CALIBRATION_KIND, SCHEMA_VERSION, body)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        data = read_json(path, CALIBRATION_KIND, (SCHEMA_VERSION,))
        return cls(
            model_sha256=data["model"]["sha256"],
            ranges={n: (float(r[0]), float(r[1])) for n, r in data["ranges"].items()},
            # Files from before preprocessing was recorded were all made with the default.
            preprocess=Preprocess.from_dict(data.get("preprocess") or {}),
        )


def calibrate(
    model: LoadedModel,
    feeds: Sequence[Feeds],
    cache: str | Path | None = None,
    preprocess: Preprocess = DEFAULT_PREPROCESS,
) -> Calibration:
    """MinMax ranges of every activation of ``model`` over ``feeds`` (prepared by
    ``preprocess``).

    With ``cache``, a file written for the same model (same sha256) and preprocessing is reused
    and ``feeds`` are only kept for evaluation; otherwise the ranges are computed and written
    there.
    """
    if cache is not None and Path(cache).is_file():
        try:
            cached = Calibration.load(cache)
        except SchemaError:
            cached = None
        if (
            cached is not None
            and cached.model_sha256 == model.info.sha256
            and cached.preprocess == preprocess
        ):
            return Calibration(model.info.sha256, cached.ranges, preprocess, tuple(feeds))
    if not feeds:
        raise InputError("no calibration inputs", field="--calib", fix="give at least one image")
    ranges = _minmax_ranges(model.proto, feeds)
    result = Calibration(model.info.sha256, ranges, preprocess, tuple(feeds))
    if cache is not None:
        result.save(cache)
    return result


def _minmax_ranges(
    proto: onnx.ModelProto, feeds: Sequence[Feeds]
) -> dict[str, tuple[float, float]]:
    """Run ORT's MinMax calibrator (it adds every tensor as an output and reduces per batch)."""
    from onnxruntime.quantization.calibrate import (
        CalibrationDataReader,
        CalibrationMethod,
        create_calibrator,
    )

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items: Iterator[Feeds] = iter(feeds)

        def get_next(self) -> Feeds | None:
            return next(self._items, None)

    with tempfile.TemporaryDirectory(prefix="qsplit-calib-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(proto, path)
        calibrator = create_calibrator(
            path,
            [],
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
        calibrator.collect_data(_Reader())
        data = calibrator.compute_data()
    return {name: (float(np.min(t.lowest)), float(np.max(t.highest))) for name, t in data.items()}
