"""A model's description: its preprocessing and its task, read from a small YAML file.

The file sits next to the model (``<model stem>.preprocess.yaml``, found without being named)
or is given with ``--preprocess FILE``; without one, a model is a YOLO detector's kind of model
(see :class:`Preprocess`'s defaults, task ``auto``). Validation lists every problem at once,
each with the field and the fix, like the infrastructure file's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from qsplit._yamlio import read_yaml
from qsplit.errors import InputError
from qsplit.model._preprocess import Preprocess

MODEL_SPEC_SCHEMA_VERSION = 1
SPEC_SUFFIX = ".preprocess.yaml"
TASK_KINDS = ("auto", "detect", "classify", "dense", "generic")

TaskKind = Literal["auto", "detect", "classify", "dense", "generic"]


@dataclass(frozen=True)
class TaskSpec:
    """What the model's output means, so quantization is scored by the right metric.

    ``auto`` keeps the shape-based guess (``N × classes``: classifier, YOLO head: detector,
    otherwise no task metric); ``options`` go to the metric (see ``qsplit.quant.task_metric``).
    """

    kind: TaskKind = "auto"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """Preprocessing and task of one model, and the file they came from (``None``: defaults)."""

    preprocess: Preprocess = field(default_factory=Preprocess)
    task: TaskSpec = field(default_factory=TaskSpec)
    source: str | None = None


def _ratio(value: Any) -> Any:
    """``"1/255"`` → 0.00392…, so a scale can be written as people think of it."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{value!r} is not a number or a fraction like 1/255") from None
    return value


def _size(value: Any) -> Any:
    """``"224x224"`` or ``224`` (square) → ``[224, 224]``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"{value!r} is not HxW")
        return [int(p) for p in parts]
    return value


def _per_channel(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Finite = Annotated[float, Field(allow_inf_nan=False)]


class _PreprocessDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Annotated[
        tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None,
        BeforeValidator(_size),
    ] = None
    resize: Literal["letterbox", "stretch", "center-crop"] = "letterbox"
    pad_value: int = Field(default=Preprocess.pad_value, ge=0, le=255)
    shorter_side: int | None = Field(default=None, gt=0)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    channel_order: Literal["RGB", "BGR"] = "RGB"
    scale: Annotated[_Positive, BeforeValidator(_ratio)] = Preprocess.scale
    mean: Annotated[
        tuple[_Finite, ...], BeforeValidator(_per_channel), Field(min_length=1, max_length=3)
    ] = (0.0,)
    std: Annotated[
        tuple[_Positive, ...], BeforeValidator(_per_channel), Field(min_length=1, max_length=3)
    ] = (1.0,)


class _TaskDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TaskKind = "auto"
    conf: float | None = Field(default=None, gt=0, lt=1)
    """detect: confidence threshold of a kept box."""
    iou: float | None = Field(default=None, gt=0, le=1)
    """detect: IoU above which NMS drops the weaker box."""
    top: int | None = Field(default=None, ge=1)
    """classify: agreement when the fp32 top-1 class is in the quantized top ``top``."""
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    """dense: a map value above this is foreground."""
    measure: Literal["cosine", "relative_l2"] | None = None
    """generic: which comparison of the raw outputs is the score."""


class _SpecDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    preprocess: _PreprocessDoc = _PreprocessDoc()
    task: _TaskDoc = _TaskDoc()


_OPTIONS_OF = {
    "auto": (),
    "detect": ("conf", "iou"),
    "classify": ("top",),
    "dense": ("threshold",),
    "generic": ("measure",),
}
_FIXES = {
    "size": "give [height, width] or HxW, e.g. 224x224",
    "resize": "use letterbox, stretch or center-crop",
    "layout": "use NCHW or NHWC",
    "channel_order": "use RGB or BGR",
    "scale": "give a positive number or a fraction, e.g. 1/255",
    "mean": "give one value or one per channel, e.g. [0.485, 0.456, 0.406]",
    "std": "give one positive value or one per channel, e.g. [0.229, 0.224, 0.225]",
    "kind": f"use one of {', '.join(TASK_KINDS)}",
    "schema_version": "write schema_version: 1",
}


def load_model_spec(path: str | Path) -> ModelSpec:
    """Read and validate a model description; :class:`InputError` lists every problem."""
    data = read_yaml(
        path,
        fix="fix the YAML syntax there, or start from "
        "src/qsplit/examples/imagenet-classifier.preprocess.yaml",
    )
    return model_spec_from_dict(data or {}, source=str(path))


def model_spec_from_dict(data: Any, *, source: str | None = None) -> ModelSpec:
    """Validate an already parsed description; :class:`InputError` lists every problem."""
    if not isinstance(data, Mapping):
        raise InputError(
            f"expected a mapping with preprocess and task, got {type(data).__name__}",
            file=source,
            fix="start from src/qsplit/examples/imagenet-classifier.preprocess.yaml",
        )
    problems: list[str] = []
    doc: _SpecDoc | None = None
    try:
        doc = _SpecDoc.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problem(err) for err in exc.errors())
    problems.extend(_cross_field_problems(data))
    if problems or doc is None:
        listing = "".join(f"\n  - {p}" for p in problems)
        raise InputError(
            f"{len(problems)} problem(s) in the model description:{listing}", file=source
        )
    pre, task = doc.preprocess, doc.task
    options = {
        name: getattr(task, name)
        for name in _OPTIONS_OF[task.kind]
        if getattr(task, name) is not None
    }
    return ModelSpec(
        preprocess=Preprocess(
            size=pre.size,
            resize=pre.resize,
            pad_value=pre.pad_value,
            shorter_side=pre.shorter_side,
            layout=pre.layout,
            channel_order=pre.channel_order,
            scale=pre.scale,
            mean=pre.mean,
            std=pre.std,
        ),
        task=TaskSpec(task.kind, options),
        source=source,
    )


def _problem(err: Any) -> str:
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    path = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown field. Fix: remove it or correct its spelling"
    message = err["msg"].removeprefix("Value error, ")
    fix = next((_FIXES[p] for p in reversed(loc) if p in _FIXES), "see docs/formats.md")
    return f"{path}: {message[:1].lower()}{message[1:]}. Fix: {fix}"


def _cross_field_problems(data: Mapping[str, Any]) -> list[str]:
    """Problems of fields taken together, read from the raw document so that they are listed
    beside the per-field ones (entries the schema rejects are skipped here)."""
    problems = []
    pre = data.get("preprocess")
    pre = pre if isinstance(pre, Mapping) else {}
    if pre.get("shorter_side") is not None and pre.get("resize", "letterbox") != "center-crop":
        problems.append(
            "preprocess.shorter_side: only center-crop resizes the shorter side. "
            "Fix: drop it or set resize: center-crop"
        )
    for name in ("mean", "std"):
        value = pre.get(name)
        if isinstance(value, list | tuple) and len(value) == 2:
            problems.append(
                f"preprocess.{name}: 2 values fit neither 1 nor 3 channels. Fix: {_FIXES[name]}"
            )
    task = data.get("task")
    task = task if isinstance(task, Mapping) else {}
    kind = task.get("kind", "auto")
    allowed = _OPTIONS_OF.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        return problems  # an unknown kind is the schema's problem
    for name in ("conf", "iou", "top", "threshold", "measure"):
        if task.get(name) is not None and name not in allowed:
            where = ", ".join(allowed) if allowed else "none"
            problems.append(
                f"task.{name}: not an option of task {kind!r} (its options: {where}). "
                "Fix: drop it or change task.kind"
            )
    return problems


def resolve_model_spec(model: str | Path, explicit: str | Path | None = None) -> ModelSpec:
    """The description of ``model``: ``explicit`` when given, else ``<stem>.preprocess.yaml``
    beside the model when it exists, else the defaults."""
    if explicit is not None:
        return load_model_spec(explicit)
    beside = Path(model).with_name(Path(model).stem + SPEC_SUFFIX)
    return load_model_spec(beside) if beside.is_file() else ModelSpec()
