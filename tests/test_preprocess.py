"""The model description: preprocessing recipes on small synthetic images, exactly, and the
YAML file's validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qsplit.errors import InputError
from qsplit.model import (
    ModelSpec,
    Preprocess,
    TaskSpec,
    load_model_spec,
    preprocess_image,
    resolve_model_spec,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "src" / "qsplit" / "examples"


def _image(pixels: list[list[list[int]]]) -> Image.Image:
    return Image.fromarray(np.array(pixels, dtype=np.uint8), "RGB")


# 2 rows × 3 columns, every pixel distinct.
PIXELS = [
    [[10, 20, 30], [40, 50, 60], [70, 80, 90]],
    [[100, 110, 120], [130, 140, 150], [160, 170, 180]],
]


def test_stretch_to_the_same_size_scales_normalises_and_lays_out_exactly() -> None:
    recipe = Preprocess(resize="stretch", scale=0.01, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    chw = preprocess_image(_image(PIXELS), recipe, 3, 2, 3)
    rgb = np.array(PIXELS, dtype=np.float64)
    expected = ((rgb * 0.01 - [0.1, 0.2, 0.3]) / [0.5, 0.25, 2.0]).astype(np.float32)
    assert chw.shape == (3, 2, 3) and chw.dtype == np.float32
    np.testing.assert_array_equal(chw, expected.transpose(2, 0, 1))
    assert chw[0, 1, 2] == np.float32((160 * 0.01 - 0.1) / 0.5)

    hwc = preprocess_image(_image(PIXELS), Preprocess(resize="stretch", layout="NHWC"), 3, 2, 3)
    np.testing.assert_array_equal(hwc, (rgb / 255).astype(np.float32))


def test_bgr_reverses_the_channels_before_the_per_channel_mean() -> None:
    recipe = Preprocess(
        resize="stretch", channel_order="BGR", scale=1.0, mean=(1.0, 2.0, 3.0), std=(1.0,)
    )
    out = preprocess_image(_image(PIXELS), recipe, 3, 2, 3)
    # Channel 0 is blue now, and takes the first mean.
    assert out[0, 0, 0] == 30 - 1 and out[1, 0, 0] == 20 - 2 and out[2, 0, 0] == 10 - 3


def test_letterbox_pads_with_the_pad_value_in_pixel_units() -> None:
    wide = Image.new("RGB", (4, 2), (200, 100, 50))
    out = preprocess_image(wide, Preprocess(pad_value=7, scale=1.0), 3, 4, 4)
    assert (out[:, 0, :] == 7).all() and (out[:, 3, :] == 7).all()
    colour = np.broadcast_to(np.array([200, 100, 50])[:, None, None], (3, 2, 4))
    np.testing.assert_array_equal(out[:, 1:3, :], colour)


def test_center_crop_takes_the_middle_after_the_shorter_side_resize() -> None:
    grid = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6)
    picture = Image.fromarray(np.repeat(grid[..., None], 3, axis=2), "RGB")
    # Shorter side 4 → no resampling; a 2×2 crop from the centre: rows 1–2, columns 2–3.
    recipe = Preprocess(resize="center-crop", shorter_side=4, scale=1.0)
    out = preprocess_image(picture, recipe, 3, 2, 2)
    np.testing.assert_array_equal(out[0], grid[1:3, 2:4])


def test_grey_input_uses_one_channel() -> None:
    out = preprocess_image(_image(PIXELS), Preprocess(resize="stretch", scale=1.0), 1, 2, 3)
    assert out.shape == (1, 2, 3)
    assert out[0, 0, 0] == round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)


def test_default_is_yolo_letterbox_to_unit_range_bit_for_bit() -> None:
    """The default must equal what qsplit did before descriptions existed: letterbox with grey
    114, then float32 pixels / 255."""
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (30, 50, 3), np.uint8), "RGB")
    resized = picture.resize((64, 38), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (64, 64), (114, 114, 114))
    canvas.paste(resized, (0, 13))
    expected = (np.asarray(canvas, dtype=np.float32) / 255.0).transpose(2, 0, 1)
    out = preprocess_image(picture, Preprocess(), 3, 64, 64)
    assert out.tobytes() == np.ascontiguousarray(expected).tobytes()


def test_examples_load_and_say_what_they_say() -> None:
    imagenet = load_model_spec(EXAMPLES / "imagenet-classifier.preprocess.yaml")
    assert imagenet.preprocess == Preprocess(
        size=(224, 224),
        resize="center-crop",
        shorter_side=256,
        scale=1 / 255,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    )
    assert imagenet.task == TaskSpec("classify", {"top": 5})
    ocr = load_model_spec(EXAMPLES / "paddleocr-det.preprocess.yaml")
    assert ocr.preprocess.channel_order == "BGR" and ocr.preprocess.resize == "stretch"
    assert ocr.task.kind == "dense"


def test_every_problem_is_listed_with_field_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "preprocess:\n"
        "  resize: squash\n"
        "  mean: [0.5, 0.5]\n"
        "  scale: 1/0\n"
        "  sise: 224\n"
        "task:\n"
        "  kind: classify\n"
        "  threshold: 0.3\n"
    )
    with pytest.raises(InputError) as caught:
        load_model_spec(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: 5 problem(s) in the model description:")
    for expected in (
        "preprocess.resize: input should be 'letterbox', 'stretch' or 'center-crop'. Fix: use",
        "preprocess.scale: '1/0' is not a number or a fraction like 1/255. Fix:",
        "preprocess.sise: unknown field. Fix: remove it",
        "preprocess.mean: 2 values fit neither 1 nor 3 channels",
        "task.threshold: not an option of task 'classify' (its options: top)",
    ):
        assert expected in message, message


def test_cross_field_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "preprocess: {mean: [0.5, 0.5], shorter_side: 256}\ntask: {kind: classify, threshold: 1}\n"
    )
    with pytest.raises(InputError) as caught:
        load_model_spec(path)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert "preprocess.mean: 2 values fit neither 1 nor 3 channels" in message
    assert "preprocess.shorter_side: only center-crop" in message
    assert "task.threshold: not an option of task 'classify' (its options: top)" in message


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("preprocess: [\n")
    with pytest.raises(InputError, match=r"x\.yaml: not valid YAML"):
        load_model_spec(path)
    path.write_text("- 1\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_model_spec(path)


def test_short_forms(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("preprocess: {size: 32x48, mean: 0.5, std: 0.25, scale: 1/255}\n")
    spec = load_model_spec(path)
    assert spec.preprocess.size == (32, 48)
    assert spec.preprocess.mean == (0.5,) and spec.preprocess.std == (0.25,)
    assert spec.preprocess.scale == 1 / 255


def test_description_beside_the_model_is_found(tmp_path: Path) -> None:
    model = tmp_path / "net.onnx"
    assert resolve_model_spec(model) == ModelSpec()
    (tmp_path / "net.preprocess.yaml").write_text("preprocess: {channel_order: BGR}\n")
    assert resolve_model_spec(model).preprocess.channel_order == "BGR"
    other = tmp_path / "other.yaml"
    other.write_text("task: {kind: generic, measure: relative_l2}\n")
    explicit = resolve_model_spec(model, other)
    assert explicit.preprocess == Preprocess() and explicit.source == str(other)
    assert explicit.task == TaskSpec("generic", {"measure": "relative_l2"})


def test_recipe_round_trips_through_its_dict() -> None:
    recipe = Preprocess(size=(8, 4), resize="center-crop", shorter_side=9, mean=(1.0, 2.0, 3.0))
    assert Preprocess.from_dict(recipe.to_dict()) == recipe
