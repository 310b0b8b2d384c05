"""Task metrics of a quantized model against its fp32 self: detection mAP50, top-1 agreement.

The float model's own predictions are the ground truth: the question is how much quantization
changes what the model says, not how good the model is (the bundled YOLO11n has random weights).
Everything is vectorised over boxes because it runs once per noise sample, hundreds of times.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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


def detections(output: np.ndarray) -> np.ndarray:
    """YOLO ``(4 + classes) × anchors`` output to rows (x1, y1, x2, y2, score, class), best
    first, after a confidence threshold and per-class NMS, at most ``MAX_DETECTIONS``."""
    scores = output[4:]
    cls = scores.argmax(0)
    conf = scores[cls, np.arange(scores.shape[1])]
    keep = np.flatnonzero(conf >= CONF_THRESHOLD)
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
        overlap = pairwise_iou(rows[best : best + 1, :4], rows[rest, :4])[0] >= NMS_IOU
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


class TaskMetric:
    """Scores quantized outputs against the fp32 ones, whose predictions are computed once.

    The kind follows the first output's shape: ``N × classes`` is a classifier (top-1
    agreement), ``1 × (4 + classes) × anchors`` a YOLO detector (mAP50); anything else has no
    task metric (``None``).
    """

    def __init__(self, reference: Sequence[np.ndarray]) -> None:
        shape = reference[0].shape
        self.kind: str | None = None
        self._reference = list(reference)
        self._boxes: list[np.ndarray] = []
        if len(shape) == 2:
            self.kind = "top1_agreement"
        elif len(shape) == 3 and 4 < shape[1] < shape[2]:
            self.kind = "map50_vs_fp32"
            self._boxes = [detections(r[0]) for r in reference]

    def __call__(self, outputs: Sequence[np.ndarray]) -> float | None:
        if self.kind == "top1_agreement":
            pairs = zip(self._reference, outputs, strict=True)
            return float(np.mean([np.mean(r.argmax(1) == o.argmax(1)) for r, o in pairs]))
        if self.kind == "map50_vs_fp32":
            return map50(self._boxes, [detections(o[0]) for o in outputs])
        return None
