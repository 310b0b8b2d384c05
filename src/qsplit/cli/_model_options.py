"""The ``--preprocess`` option, shared by every command that feeds images to a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PreprocessOption = Annotated[
    Path | None,
    typer.Option(
        "--preprocess",
        help="Model description YAML: input size, resize, layout, channel order, scale, "
        "mean/std and task (default: MODEL_STEM.preprocess.yaml beside the model, else YOLO's "
        "letterbox to [0, 1]). See docs/formats.md.",
    ),
]
