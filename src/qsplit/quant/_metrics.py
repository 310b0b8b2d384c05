"""Task metrics of a quantized model against its fp32 self, one per kind of task.

The float model's own predictions are the ground truth: the question is how much quantization
changes what the model says, not how good the model is (the bundled YOLO11n has random weights).
Built in: ``detect`` (YOLO decode, mAP50), ``classify`` (top-1/top-k agreement), ``dense``
(IoU of thresholded maps, e.g. a text detector's probability map) and ``generic`` (cosine or
relative L2 of the raw outputs). Others are added with :func:`register_metric`. Everything is
vectorised because a metric runs once per noise sample, hundreds of times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from qsplit.errors import InputError
from qsplit.model import TaskSpec

CONF_THRESHOLD = 0.25
NMS_IOU = 0.7
MATCH_IOU = 0.5
MAX_DETECTIONS = 300
"""Per image, as Ultralytics' ``max_det``."""
_RECALL_GRID = np.linspace(0.0, 1.0, 101)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n×4, x1 y1 x2 y2) with every box of ``b`` (m×4): n×m."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def detections(
    output: np.ndarray, conf_threshold: float = CONF_THRESHOLD, nms_iou: float = NMS_IOU
) -> np.ndarray:
    """YOLO ``(4 + classes) × anchors`` output to rows (x1, y1, x2, y2, score, class), best
    first, after a confidence threshold and per-class NMS, at most ``MAX_DETECTIONS``."""
    scores = output[4:]
    cls = scores.argmax(0)
    conf = scores[cls, np.arange(scores.shape[1])]
    keep = np.flatnonzero(conf >= conf_threshold)
    keep = keep[np.argsort(-conf[keep], kind="stable")]
    cx, cy, w, h = output[:4, keep].astype(np.float64)
    rows = np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, conf[keep], cls[keep]])
    # Greedy NMS, one kept box per iteration: a badly quantized head can pass thousands of
    # boxes, so neither an n×n IoU matrix nor a loop over every candidate is affordable.
    kept: list[int] = []
    rest = np.arange(len(rows))
    while len(rest) and len(kept) < MAX_DETECTIONS:
        best, rest = rest[0], rest[1:]
        kept.append(best)
        overlap = pairwise_iou(rows[best : best + 1, :4], rows[rest, :4])[0] >= nms_iou
        rest = rest[~(overlap & (rows[rest, 5] == rows[best, 5]))]
    return rows[kept].reshape(-1, 6)


def _matches(reference: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """True for each prediction (best first) that hits a same-class reference box at IoU ≥ 0.5
    not already taken by a better prediction (VOC-style greedy matching)."""
    hit = np.zeros(len(predicted), bool)
    if not len(reference) or not len(predicted):
        return hit
    iou = pairwise_iou(predicted[:, :4], reference[:, :4])
    iou[predicted[:, None, 5] != reference[None, :, 5]] = -1.0
    best = iou.argmax(1)
    used = np.zeros(len(reference), bool)
    for i in np.flatnonzero(iou[np.arange(len(predicted)), best] >= MATCH_IOU):
        if not used[best[i]]:
            used[best[i]] = hit[i] = True
    return hit


def _average_precision(scores: np.ndarray, hits: np.ndarray, total: int) -> float:
    """101-point interpolated AP of predictions with ``scores`` and ``hits`` over ``total``
    reference boxes."""
    if not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / total
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, _RECALL_GRID, side="left")
    reached = first < len(recall)
    return float(np.where(reached, envelope[np.minimum(first, len(recall) - 1)], 0.0).mean())


def map50(references: Sequence[np.ndarray], predictions: Sequence[np.ndarray]) -> float:
    """mAP at IoU 0.5 of ``predictions`` against ``references`` as ground truth, per image.

    Classes without reference boxes are skipped; with no reference box at all the score is 1
    when nothing is predicted either and 0 otherwise.
    """
    if not any(len(r) for r in references):
        return 1.0 if not any(len(p) for p in predictions) else 0.0
    hits = np.concatenate([_matches(r, p) for r, p in zip(references, predictions, strict=True)])
    predicted = np.concatenate([p.reshape(-1, 6) for p in predictions])
    truth_classes = np.concatenate([r[:, 5] for r in references])
    aps = [
        _average_precision(
            predicted[predicted[:, 5] == c, 4],
            hits[predicted[:, 5] == c],
            int(np.count_nonzero(truth_classes == c)),
        )
        for c in np.unique(truth_classes)
    ]
    return float(np.mean(aps))


# -- the registry -------------------------------------------------------------------------------
class Metric(Protocol):
    """Scores quantized outputs against the fp32 reference it was made with."""

    name: str
    """What the score is, e.g. ``map50_vs_fp32``; recorded with the noise samples."""

    def __call__(self, outputs: Sequence[np.ndarray]) -> float: ...


MetricFactory = Callable[[Sequence[np.ndarray], Mapping[str, Any]], Metric]
"""Builds a metric from the fp32 outputs (first model output, one array per input) and the
task's options."""

_FACTORIES: dict[str, MetricFactory] = {}


def register_metric(kind: str, factory: MetricFactory) -> None:
    """Make ``kind`` a task whose quantized outputs ``factory``'s metric scores."""
    _FACTORIES[kind] = factory


def metric_kinds() -> tuple[str, ...]:
    """Task kinds with a metric, besides ``auto``."""
    return tuple(_FACTORIES)


def task_metric(task: TaskSpec, reference: Sequence[np.ndarray]) -> Metric | None:
    """The metric of ``task`` over the fp32 ``reference`` outputs.

    ``auto`` guesses from the first output's shape as qsplit always did: ``N × classes`` is a
    classifier (top-1 agreement), ``1 × (4 + classes) × anchors`` a YOLO detector (mAP50);
    anything else has no task metric (``None``).
    """
    kind = task.kind
    if kind == "auto":
        shape = reference[0].shape
        if len(shape) == 2:
            kind = "classify"
        elif len(shape) == 3 and 4 < shape[1] < shape[2]:
            kind = "detect"
        else:
            return None
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise InputError(
            f"no metric for task {kind!r}",
            field="task.kind",
            fix=f"use one of {', '.join(_FACTORIES)}, or register one with "
            "qsplit.quant.register_metric",
        )
    return factory(reference, task.options)


class DetectionMetric:
    """mAP50 of the quantized model's YOLO boxes, the fp32 boxes being the ground truth."""

    name = "map50_vs_fp32"

    def __init__(self, reference: Sequence[np.ndarray], options: Mapping[str, Any]) -> None:
        shape = reference[0].shape
        if len(shape) != 3 or shape[1] <= 4:
            raise InputError(
                f"a detection metric needs a YOLO output 1 × (4 + classes) × anchors, the "
                f"model's first output is {'x'.join(map(str, shape))}",
                field="task.kind",
                fix="use task kind dense or generic for this model",
            )
        self._conf = float(options.get("conf", CONF_THRESHOLD))
        self._iou = float(options.get("iou", NMS_IOU))
        self._boxes = [detections(r[0], self._conf, self._iou) for r in reference]

    def __call__(self, outputs: Sequence[np.ndarray]) -> float:
        return map50(self._boxes, [detections(o[0], self._conf, self._iou) for o in outputs])


class ClassificationMetric:
    """Share of inputs whose fp32 top-1 class is among the quantized model's top ``top``."""

    def __init__(self, reference: Sequence[np.ndarray], options: Mapping[str, Any]) -> None:
        self._top = int(options.get("top", 1))
        self.name = f"top{self._top}_agreement"
        self._labels = [r.reshape(r.shape[0], -1).argmax(1) for r in reference]

    def __call__(self, outputs: Sequence[np.ndarray]) -> float:
        scores = []
        for labels, output in zip(self._labels, outputs, strict=True):
            logits = output.reshape(output.shape[0], -1)
            top = np.argsort(-logits, axis=1, kind="stable")[:, : self._top]
            scores.append(np.mean(np.any(top == labels[:, None], axis=1)))
        return float(np.mean(scores))


class DenseMetric:
    """IoU of the maps thresholded at ``threshold`` (quantized against fp32), over all inputs
    together; 1 when neither has a foreground pixel."""

    def __init__(self, reference: Sequence[np.ndarray], options: Mapping[str, Any]) -> None:
        self._threshold = float(options.get("threshold", 0.5))
        self.name = f"iou_vs_fp32@{self._threshold:g}"
        self._masks = [r > self._threshold for r in reference]

    def __call__(self, outputs: Sequence[np.ndarray]) -> float:
        pairs = list(zip(self._masks, (o > self._threshold for o in outputs), strict=True))
        inter = sum(int(np.count_nonzero(r & o)) for r, o in pairs)
        union = sum(int(np.count_nonzero(r | o)) for r, o in pairs)
        return 1.0 if union == 0 else inter / union


class GenericMetric:
    """The raw outputs compared: mean cosine similarity (1 is identical) or mean relative L2
    error ``‖fp32 − int8‖ / ‖fp32‖`` (0 is identical), per input."""

    def __init__(self, reference: Sequence[np.ndarray], options: Mapping[str, Any]) -> None:
        self._measure = str(options.get("measure", "cosine"))
        if self._measure not in ("cosine", "relative_l2"):
            raise InputError(
                f"unknown measure {self._measure!r}",
                field="task.measure",
                fix="use cosine or relative_l2",
            )
        self.name = f"{self._measure}_vs_fp32"
        self._reference = [r.astype(np.float64).ravel() for r in reference]

    def __call__(self, outputs: Sequence[np.ndarray]) -> float:
        values = []
        for ref, out in zip(self._reference, outputs, strict=True):
            out = out.astype(np.float64).ravel()
            ref_norm, out_norm = np.linalg.norm(ref), np.linalg.norm(out)
            if self._measure == "relative_l2":
                diff = np.linalg.norm(ref - out)
                values.append(0.0 if diff == 0 else diff / max(ref_norm, np.finfo(float).tiny))
            elif ref_norm == 0 or out_norm == 0:
                values.append(1.0 if ref_norm == out_norm else 0.0)
            else:
                values.append(float(ref @ out) / (ref_norm * out_norm))
        return float(np.mean(values))


register_metric("detect", DetectionMetric)
register_metric("classify", ClassificationMetric)
register_metric("dense", DenseMetric)
register_metric("generic", GenericMetric)
