"""Files shipped inside the package: a ready-made model and a few sample images.

They are bundled so that the demo and the tests run on a fresh machine without torch, without
Ultralytics and without any download. How each file was produced, and under which licence, is
written down next to it (``models/README.md``, ``images/SOURCES.md``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from qsplit.errors import InputError

#: Suffix of the sample images; only these count as images in :func:`sample_images`.
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _asset_dir(*parts: str) -> Path:
    # The package is installed from a directory tree (editable or wheel), never a zip, so the
    # traversable is a real path: turning it into Path lets callers hand it to onnx/PIL directly.
    return Path(str(files("qsplit.assets").joinpath(*parts)))


def bundled_model_names() -> list[str]:
    """Names accepted by :func:`bundled_model_path`, e.g. ``["yolo11n"]``."""
    return sorted(p.stem for p in _asset_dir("models").glob("*.onnx"))


def bundled_model_path(name: str = "yolo11n") -> Path:
    """Path of a bundled ONNX model (weights random, rescaled: see ``models/README.md``).

    Raises :class:`~qsplit.errors.InputError` naming the available models when ``name`` is not
    bundled, so a typo does not surface later as a confusing "file not found".
    """
    path = _asset_dir("models", f"{name}.onnx")
    if not path.is_file():
        available = ", ".join(bundled_model_names()) or "none"
        raise InputError(
            f"no bundled model named {name!r} (bundled: {available})",
            field="model",
            fix="export one with 'qsplit model export' and pass its path",
        )
    return path


def sample_images_dir() -> Path:
    """Folder holding the redistributable sample images (see its ``SOURCES.md``)."""
    return _asset_dir("images")


def sample_images() -> list[Path]:
    """The bundled sample images, sorted by name so every run sees them in the same order."""
    return sorted(p for p in sample_images_dir().iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def bundled_profile_paths() -> list[Path]:
    """The shipped compute profiles (``profiles/*.json``, see ``profiles/README.md``), by name."""
    return sorted(_asset_dir("profiles").glob("*.json"))
