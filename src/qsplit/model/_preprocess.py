"""How a model wants its images: resize, channel order, layout, scale and normalisation.

Calibration ranges, the noise study and the requests of ``qsplit run`` are only meaningful on
inputs like those the model was trained on. A detector fed ImageNet-normalised BGR pixels
letterboxed to [0, 1] RGB sees a different distribution, its outputs can collapse to ~0, and a
noise model fitted there says nothing about deployment. So every image path in qsplit goes
through :func:`preprocess_image` with the model's own :class:`Preprocess`.

Geometry (resizing) is done by Pillow, the one image library of the core; everything after it
is numpy. The default is what YOLO does (letterbox with grey 114, RGB, N×C×H×W, [0, 1]), so
results of models without a description do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

ResizeMode = Literal["letterbox", "stretch", "center-crop"]
Layout = Literal["NCHW", "NHWC"]
ChannelOrder = Literal["RGB", "BGR"]

RESIZE_MODES: tuple[ResizeMode, ...] = ("letterbox", "stretch", "center-crop")
LAYOUTS: tuple[Layout, ...] = ("NCHW", "NHWC")
CHANNEL_ORDERS: tuple[ChannelOrder, ...] = ("RGB", "BGR")

LETTERBOX_GREY = 114
"""Grey Ultralytics pads letterboxed images with; calibrating on the padding it infers on."""


@dataclass(frozen=True)
class Preprocess:
    """The image → input tensor recipe of one model: ``(pixel · scale − mean) / std``."""

    size: tuple[int, int] | None = None
    """Height and width of the input; ``None``: the model's input shape says."""
    resize: ResizeMode = "letterbox"
    """``letterbox``: fit inside, keep the aspect ratio, pad with ``pad_value``; ``stretch``:
    resize to the size ignoring the aspect ratio; ``center-crop``: resize the shorter side to
    ``shorter_side`` (default: the larger of height and width), then cut out the centre."""
    pad_value: int = LETTERBOX_GREY
    """Letterbox padding, in pixel units (0–255), before scale and normalisation."""
    shorter_side: int | None = None
    """Center-crop only: the shorter side before cropping (torchvision's 256 for 224)."""
    layout: Layout = "NCHW"
    channel_order: ChannelOrder = "RGB"
    scale: float = 1 / 255
    """Pixels (0–255) are multiplied by this first."""
    mean: tuple[float, ...] = (0.0,)
    """Subtracted after scaling: one value for every channel, or one per channel (in the
    model's channel order)."""
    std: tuple[float, ...] = (1.0,)
    """Divides after the mean: one value, or one per channel."""

    def channel_problem(self, channels: int) -> str | None:
        """Why the per-channel values do not fit an input of ``channels`` (``None``: they do)."""
        for name in ("mean", "std"):
            count = len(getattr(self, name))
            if count not in (1, channels):
                return (
                    f"preprocess.{name} has {count} values but the model's input has "
                    f"{channels} channel(s)"
                )
        return None

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain JSON values, to record with the results it produced."""
        return {
            "size": list(self.size) if self.size else None,
            "resize": self.resize,
            "pad_value": self.pad_value,
            "shorter_side": self.shorter_side,
            "layout": self.layout,
            "channel_order": self.channel_order,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        """Inverse of :meth:`to_dict`; missing keys take the defaults."""
        size = data.get("size")
        default = cls()
        return cls(
            size=(int(size[0]), int(size[1])) if size else None,
            resize=data.get("resize", default.resize),
            pad_value=int(data.get("pad_value", default.pad_value)),
            shorter_side=data.get("shorter_side"),
            layout=data.get("layout", default.layout),
            channel_order=data.get("channel_order", default.channel_order),
            scale=float(data.get("scale", default.scale)),
            mean=tuple(float(v) for v in data.get("mean", default.mean)),
            std=tuple(float(v) for v in data.get("std", default.std)),
        )


def image_dims(preprocess: Preprocess, shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """Channels, height and width of an input of ``shape`` in the recipe's layout, or ``None``
    when it is not a rank-4 tensor of 1 or 3 channels."""
    if len(shape) != 4:
        return None
    _, c, h, w = shape if preprocess.layout == "NCHW" else (shape[0], shape[3], *shape[1:3])
    return (c, h, w) if c in (1, 3) else None


def preprocess_image(
    image: Image, preprocess: Preprocess, channels: int, height: int, width: int
) -> np.ndarray:
    """``image`` as one float32 input of ``channels``×``height``×``width`` in the recipe's
    layout (C×H×W or H×W×C, without the batch axis)."""
    picture = image.convert("RGB" if channels == 3 else "L")
    placed = _resized(picture, preprocess, height, width)
    pixels = np.asarray(placed, dtype=np.float64).reshape(height, width, channels)
    if channels == 3 and preprocess.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    mean = np.asarray(preprocess.mean, dtype=np.float64)
    std = np.asarray(preprocess.std, dtype=np.float64)
    array = ((pixels * preprocess.scale - mean) / std).astype(np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1) if preprocess.layout == "NCHW" else array)


def _resized(picture: Image, preprocess: Preprocess, height: int, width: int) -> Image:
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    if preprocess.resize == "stretch":
        return picture.resize((width, height), bilinear)
    if preprocess.resize == "center-crop":
        shorter = preprocess.shorter_side or max(height, width)
        factor = shorter / min(picture.width, picture.height)
        size = (
            max(width, round(picture.width * factor)),
            max(height, round(picture.height * factor)),
        )
        resized = picture.resize(size, bilinear)
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        return resized.crop((left, top, left + width, top + height))
    factor = min(width / picture.width, height / picture.height)
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    resized = picture.resize(size, bilinear)
    fill = (preprocess.pad_value,) * len(picture.getbands())
    canvas = Image.new(picture.mode, (width, height), fill)
    canvas.paste(resized, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas
