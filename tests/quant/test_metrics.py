"""Each built-in task metric on constructed outputs: identical → perfect, perturbed → the value
worked out by hand; and the registry."""

from __future__ import annotations

import numpy as np
import pytest

from qsplit.errors import InputError
from qsplit.model import TaskSpec
from qsplit.quant import register_metric, task_metric


def _yolo(boxes: list[tuple[float, float, float, float, int, float]], anchors: int = 8):
    """A 1 × (4 + 2 classes) × anchors YOLO output holding ``boxes`` (cx, cy, w, h, class,
    score); the other anchors score 0."""
    out = np.zeros((1, 6, anchors), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(boxes):
        out[0, :4, i] = cx, cy, w, h
        out[0, 4 + cls, i] = score
    return out


def test_detection_is_map50_against_the_fp32_boxes() -> None:
    reference = [_yolo([(10, 10, 4, 4, 0, 0.9), (50, 50, 8, 8, 1, 0.8)])]
    metric = task_metric(TaskSpec("detect"), reference)
    assert metric is not None and metric.name == "map50_vs_fp32"
    assert metric(reference) == 1.0
    # The class-1 box falls under the confidence threshold: AP 1 for class 0, 0 for class 1.
    assert metric([_yolo([(10, 10, 4, 4, 0, 0.9), (50, 50, 8, 8, 1, 0.2)])]) == 0.5
    # A lower threshold (a task option) keeps it.
    lenient = task_metric(TaskSpec("detect", {"conf": 0.1}), reference)
    assert lenient is not None
    assert lenient([_yolo([(10, 10, 4, 4, 0, 0.9), (50, 50, 8, 8, 1, 0.2)])]) == 1.0


def test_classification_is_top_k_agreement() -> None:
    reference = [np.array([[0, 5, 1], [3, 0, 1]], np.float32), np.array([[9, 0, 0]], np.float32)]
    top1 = task_metric(TaskSpec("classify"), reference)
    assert top1 is not None and top1.name == "top1_agreement"
    assert top1(reference) == 1.0
    # First batch: one of two rows changes its top class (0.5); second batch agrees (1.0).
    perturbed = [np.array([[0, 5, 1], [1, 0, 3]], np.float32), reference[1]]
    assert top1(perturbed) == 0.75
    top2 = task_metric(TaskSpec("classify", {"top": 2}), reference)
    assert top2 is not None and top2.name == "top2_agreement"
    assert top2(perturbed) == 1.0  # class 0 is still second in [1, 0, 3]


def test_dense_is_iou_of_thresholded_maps() -> None:
    ref = np.zeros((1, 1, 4, 4), np.float32)
    ref[0, 0, :2, :2] = 0.9  # 4 foreground pixels
    metric = task_metric(TaskSpec("dense", {"threshold": 0.5}), [ref])
    assert metric is not None and metric.name == "iou_vs_fp32@0.5"
    assert metric([ref]) == 1.0
    out = np.zeros_like(ref)
    out[0, 0, 0, :] = 0.7  # 2 of the 4 kept, 2 new: intersection 2, union 6
    assert metric([out]) == pytest.approx(2 / 6)
    empty = np.zeros_like(ref)
    assert task_metric(TaskSpec("dense"), [empty])([empty]) == 1.0  # type: ignore[misc]


def test_generic_cosine_and_relative_l2() -> None:
    ref = [np.array([3.0, 4.0], np.float32)]
    cosine = task_metric(TaskSpec("generic"), ref)
    l2 = task_metric(TaskSpec("generic", {"measure": "relative_l2"}), ref)
    assert cosine is not None and l2 is not None
    assert (cosine.name, l2.name) == ("cosine_vs_fp32", "relative_l2_vs_fp32")
    assert cosine(ref) == pytest.approx(1.0) and l2(ref) == 0.0
    doubled = [np.array([6.0, 8.0], np.float32)]
    assert cosine(doubled) == pytest.approx(1.0) and l2(doubled) == pytest.approx(1.0)
    orthogonal = [np.array([-4.0, 3.0], np.float32)]
    assert cosine(orthogonal) == pytest.approx(0.0)
    assert l2(orthogonal) == pytest.approx(np.sqrt(50) / 5)


def test_auto_guesses_from_the_output_shape() -> None:
    assert task_metric(TaskSpec(), [np.zeros((1, 10), np.float32)]).name == "top1_agreement"  # type: ignore[union-attr]
    assert task_metric(TaskSpec(), [_yolo([])]).name == "map50_vs_fp32"  # type: ignore[union-attr]
    assert task_metric(TaskSpec(), [np.zeros((1, 1, 8, 8), np.float32)]) is None


def test_detect_on_a_non_yolo_output_says_which_task_to_use() -> None:
    with pytest.raises(InputError, match="use task kind dense or generic"):
        task_metric(TaskSpec("detect"), [np.zeros((1, 1, 8, 8), np.float32)])


def test_a_registered_metric_is_used_for_its_task() -> None:
    class MaxAbs:
        name = "max_abs_vs_fp32"

        def __init__(self, reference, options) -> None:
            self.reference = reference

        def __call__(self, outputs) -> float:
            return max(
                float(np.abs(r - o).max()) for r, o in zip(self.reference, outputs, strict=True)
            )

    register_metric("test-max-abs", MaxAbs)
    metric = task_metric(TaskSpec("test-max-abs"), [np.ones(3, np.float32)])  # type: ignore[arg-type]
    assert metric is not None and metric([np.full(3, 1.5, np.float32)]) == 0.5
    with pytest.raises(InputError, match="no metric for task 'nope'"):
        task_metric(TaskSpec("nope"), [np.ones(3, np.float32)])  # type: ignore[arg-type]
