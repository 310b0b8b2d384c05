"""The reference run profiling feeds blocks from: the whole model on real input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import synthetic
from qsplit.assets import sample_images_dir
from qsplit.model import analyze
from qsplit.profile import block_feeds, profile_compute, reference_inputs, reference_values
from qsplit.quant import Calibration, image_feeds


def test_an_image_model_is_fed_the_first_bundled_image_and_what_it_computes(
    tmp_path: Path,
) -> None:
    path = synthetic.save(synthetic.computed_resize(), tmp_path / "resize.onnx")
    model, graph = analyze(str(path))
    values = block_feeds(model, graph)
    (image,) = image_feeds(model, sample_images_dir(), limit=1)
    np.testing.assert_array_equal(values["x"], image["x"])
    np.testing.assert_array_equal(values["scales"], [1, 1, 2, 2])
    assert values["out"].shape == (1, 3, 32, 32)
    profile = profile_compute(model, graph, node="local", int8=False, warmup=1, repetitions=2)
    assert set(profile.blocks) == {"scales", "stem", "up"}


def test_calibration_inputs_come_first_and_only_named_tensors_are_kept(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.computed_resize(), tmp_path / "resize.onnx")
    model, graph = analyze(str(path))
    given = {"x": np.full((1, 3, 16, 16), 0.5, np.float32)}
    calibration = Calibration(model.info.sha256, {}, feeds=(given,))
    inputs = reference_inputs(model, calibration)
    np.testing.assert_array_equal(inputs["x"], given["x"])
    values = reference_values(model, graph, inputs, ["scales"])
    assert set(values) == {"x", "scales"}
    np.testing.assert_array_equal(values["scales"], [1, 1, 2, 2])


def test_a_model_without_image_input_gets_seeded_normal_floats(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, _ = analyze(str(path))  # two inputs: no images
    first, again = reference_inputs(model), reference_inputs(model)
    assert set(first) == {"x", "y"}
    np.testing.assert_array_equal(first["y"], again["y"])
    assert first["x"].min() < 0 < first["x"].max()
