"""Noise sampling, task metrics and the polynomial fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import quantizable_branchy
from qsplit.errors import InputError
from qsplit.quant import (
    NoisePolynomial,
    NoiseSample,
    candidate_blocks,
    detections,
    fit_noise,
    map50,
    plot_fit,
    random_masks,
    sample_noise,
    save_samples,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return quantizable_branchy(tmp_path_factory.mktemp("n"))


def test_masks_are_distinct_and_include_empty_full_and_single_blocks() -> None:
    masks = random_masks(5, 20, seed=1)
    assert len(set(masks)) == 20 and masks[:2] == [(0,) * 5, (1,) * 5]
    assert sorted(masks[2:7], reverse=True) == [
        tuple(int(i == j) for i in range(5)) for j in range(5)
    ]
    assert len(random_masks(2, 50)) == 4
    few = random_masks(5, 19, seed=1)  # singles would be more than a quarter of the design
    assert sum(sum(m) == 1 for m in few) < 5


def test_top_k_out_of_range_names_the_option(setup) -> None:
    _, graph, quantizer, _ = setup
    with pytest.raises(InputError, match=r"--top-k.*between 1 and"):
        candidate_blocks(graph, quantizer, top_k=0)
    with pytest.raises(InputError, match="--top-k"):
        candidate_blocks(graph, quantizer, top_k=999)


def test_sampling_and_fit(setup, tmp_path: Path) -> None:
    model, graph, quantizer, feeds = setup
    blocks = candidate_blocks(graph, quantizer, top_k=4)
    assert not any(
        graph.tensor_by_name[t].is_model_output for b in blocks for t in graph.block(b).outputs
    )
    samples = sample_noise(quantizer, blocks, random_masks(len(blocks), 16), feeds)
    assert samples[0].noise == 0.0 and samples[1].noise > 0
    assert samples[0].task == 1.0  # classification-like output: top-1 agreement
    poly = fit_noise(samples, blocks, model.info.sha256)
    assert poly.predict(()) == 0.0
    assert poly.fit["settings"] == {} and poly.fit["train"] + poly.fit["test"] == 15
    tried = {(row["degree"], row["power"]): row["mse"] for row in poly.fit["cv_mse"]}
    assert set(tried) == {(d, p) for d in (1, 2, 3) for p in (1, 2)}
    assert (poly.degree, poly.power) == min(tried, key=tried.__getitem__)
    assert poly.fit["terms"] == len(poly.terms) and all(t.coefficient for t in poly.terms)
    poly.save(tmp_path / "noise.json")
    assert NoisePolynomial.load(tmp_path / "noise.json") == poly
    save_samples(tmp_path / "samples.json", samples, blocks)
    plot_fit(tmp_path / "fit.png", poly, samples)
    assert (tmp_path / "fit.png").stat().st_size > 0


def test_fit_recovers_a_known_polynomial() -> None:
    """Noise with one pairwise interaction: degree 2 is chosen and predicts unseen masks."""
    blocks = [f"b{i}" for i in range(6)]
    weights = np.array([0.01, 0.02, 0.005, 0.03, 0.015, 0.008])

    def noise(mask: tuple[int, ...]) -> float:
        return float(weights @ mask - 0.012 * mask[1] * mask[3])

    masks = random_masks(6, 64, seed=2)
    samples = [
        NoiseSample(tuple(b for b, q in zip(blocks, m, strict=True) if q), noise(m), None, 0.0)
        for m in masks
    ]
    poly = fit_noise(samples[:48], blocks, "sha")
    assert poly.degree == 2 and poly.fit["r2_test"] > 0.999
    for sample in samples[48:]:
        assert poly.predict(sample.blocks) == pytest.approx(sample.noise, abs=1e-3)


def test_fit_finds_noise_whose_square_is_additive() -> None:
    """Independent error sources add in variance: noise = sqrt(Σ w_i q_i). The fit should model
    noise² (power 2, degree 1) and predict unseen masks in noise units."""
    blocks = [f"b{i}" for i in range(8)]
    weights = np.array([4.0, 1.0, 0.5, 2.0, 0.2, 3.0, 0.7, 1.5]) * 1e-4

    masks = random_masks(8, 120, seed=3)
    samples = [
        NoiseSample(
            tuple(b for b, q in zip(blocks, m, strict=True) if q),
            float(np.sqrt(weights @ m)),
            None,
            0.0,
        )
        for m in masks
    ]
    poly = fit_noise(samples[:90], blocks, "sha")
    assert poly.power == 2 and poly.degree == 1
    for sample in samples[90:]:
        assert poly.predict(sample.blocks) == pytest.approx(sample.noise, rel=0.02)
    assert poly.polynomial_bound(0.01) == pytest.approx(1e-4)


def test_too_few_samples_is_an_input_error() -> None:
    samples = [NoiseSample(("a",), 0.1, None, 0.0)]
    with pytest.raises(InputError, match="--samples"):
        fit_noise(samples, ["a", "b", "c"], "sha")


def test_map50_identity_and_miss() -> None:
    ref = [np.array([[0, 0, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.8, 2]], float)]
    assert map50(ref, ref) == pytest.approx(1.0)
    shifted = [ref[0] + np.array([100, 100, 100, 100, 0, 0])]
    assert map50(ref, shifted) == 0.0
    assert map50([np.zeros((0, 6))], [np.zeros((0, 6))]) == 1.0
    assert map50([np.zeros((0, 6))], ref) == 0.0


def test_map50_counts_each_reference_box_once() -> None:
    ref = [np.array([[0, 0, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.8, 1]], float)]
    duplicate = [np.array([[0, 0, 10, 10, 0.9, 1], [0, 0, 10, 10, 0.7, 1]], float)]
    # One hit then a duplicate: precision 1 up to recall 0.5, nothing beyond.
    assert map50(ref, duplicate) == pytest.approx(51 / 101)
    other_class = [np.array([[0, 0, 10, 10, 0.9, 3]], float)]
    assert map50(ref, other_class) == 0.0


def _yolo_output(boxes: list[tuple[float, float, float, float, int, float]]) -> np.ndarray:
    """A YOLO (4 + 3 classes) × anchors output holding ``(cx, cy, w, h, class, score)`` rows."""
    out = np.zeros((7, len(boxes)), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(boxes):
        out[:4, i] = cx, cy, w, h
        out[4 + cls, i] = score
    return out


def test_detections_threshold_and_per_class_nms() -> None:
    output = _yolo_output(
        [
            (50, 50, 20, 20, 0, 0.9),
            (51, 50, 20, 20, 0, 0.8),  # same class, IoU 0.9: suppressed
            (51, 50, 20, 20, 1, 0.7),  # other class: kept
            (150, 150, 20, 20, 0, 0.6),  # far away: kept
            (10, 10, 5, 5, 2, 0.1),  # below the confidence threshold
        ]
    )
    rows = detections(output)
    np.testing.assert_allclose(rows[:, 4], [0.9, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(rows[:, 5], [0, 1, 0])
    np.testing.assert_allclose(rows[0, :4], [40, 40, 60, 60])
    assert detections(np.zeros((7, 10), np.float32)).shape == (0, 6)
