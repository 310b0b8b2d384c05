"""Request inputs from images follow the model's description, like calibration does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from qsplit.errors import InputError
from qsplit.model import Preprocess, TensorSpec, load_model
from qsplit.quant import image_feeds
from qsplit.runtime import image_requests

NHWC = Preprocess(resize="stretch", layout="NHWC", channel_order="BGR", scale=1.0)


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (6, 8), (10, 20, 30)).save(folder / "a.png")
    return folder


def test_nhwc_bgr_requests(picture: Path) -> None:
    (feed,) = list(image_requests([TensorSpec("x", (1, 8, 6, 3), "float32")], picture, NHWC))
    assert feed["x"].shape == (1, 8, 6, 3) and feed["x"].dtype == np.float32
    np.testing.assert_array_equal(feed["x"][0, 3, 2], [30, 20, 10])


def test_default_requests_stay_nchw_in_unit_range(picture: Path) -> None:
    (feed,) = list(image_requests([TensorSpec("x", (1, 3, 8, 6), "float32")], picture))
    assert feed["x"].shape == (1, 3, 8, 6)
    assert feed["x"][0, :, 4, 3] == pytest.approx(np.array([10, 20, 30]) / 255)


def test_a_layout_that_does_not_fit_the_input_says_so(picture: Path) -> None:
    with pytest.raises(InputError, match=r"one 1×H×W×C float input .*--preprocess"):
        image_requests([TensorSpec("x", (1, 3, 8, 6), "float32")], picture, NHWC)


def test_calibration_checks_the_description_size_against_the_model(
    picture: Path, tmp_path: Path
) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 3])],
    )
    path = tmp_path / "nhwc.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    model = load_model(path)
    (feed,) = image_feeds(model, picture, preprocess=NHWC)
    assert feed["x"].shape == (1, 8, 6, 3)
    with pytest.raises(
        InputError, match=r"preprocess\.size: .* 4x4 but the model's input x is 8x6"
    ):
        image_feeds(model, picture, preprocess=Preprocess(size=(4, 4), layout="NHWC"))


def test_per_channel_values_must_fit_the_channels(picture: Path) -> None:
    grey = [TensorSpec("x", (1, 1, 8, 6), "float32")]
    imagenet = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    with pytest.raises(InputError, match=r"preprocess\.mean has 3 values but .* 1 channel"):
        image_requests(grey, picture, imagenet)
