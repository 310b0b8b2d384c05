"""``qsplit noise`` end to end on a tiny image classifier, and its refusals of bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from qsplit.quant import NoisePolynomial

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _tiny_classifier(path: Path) -> Path:
    """1×3×32×32 image → 10 classes. Blocks model.0 … model.5: four convolutions that can be
    quantized, ``model.1`` a lone Neg that cannot, and ``model.5`` the head (model output)."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)

    def conv(block: int, source: str, target: str, w: str, stride: int = 1) -> list:
        return [
            helper.make_node(
                "Conv",
                [source, w],
                [f"c{block}"],
                f"/model.{block}/Conv",
                pads=[1] * 4,
                strides=[stride] * 2,
            ),
            helper.make_node("Relu", [f"c{block}"], [target], f"/model.{block}/Relu"),
        ]

    nodes = [
        *conv(0, "images", "a0", "w0"),
        helper.make_node("Neg", ["a0"], ["a1"], "/model.1/Neg"),
        *conv(2, "a1", "a2", "w2"),
        *conv(3, "a2", "a3", "w3", stride=2),
        *conv(4, "a3", "a4", "w4"),
        helper.make_node("GlobalAveragePool", ["a4"], ["g"], "/model.5/GlobalAveragePool"),
        helper.make_node("Flatten", ["g"], ["f"], "/model.5/Flatten"),
        helper.make_node("Gemm", ["f", "wf"], ["logits"], "/model.5/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [
            weight("w0", 8, 3, 3, 3),
            weight("w2", 8, 8, 3, 3),
            weight("w3", 16, 8, 3, 3),
            weight("w4", 16, 16, 3, 3),
            weight("wf", 10, 16),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    # Sizes unlike the model's 32×32 and a grey one: all are letterboxed to the input.
    for i, (size, mode) in enumerate([((50, 20), "RGB"), ((32, 32), "RGB"), ((9, 70), "L")]):
        pixels = rng.integers(0, 256, (size[1], size[0], 3 if mode == "RGB" else 1), np.uint8)
        Image.fromarray(pixels.squeeze()).convert(mode).save(images / f"{i}.png")
    return _tiny_classifier(folder / "tiny.onnx")


def _qsplit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qsplit", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_noise_writes_model_samples_and_plot(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "noise.json"
    result = _qsplit(
        "noise", tiny, "--out", out, "--calib", tiny.parent / "images", "--top-k", "4",
        "--samples", "16", "--eval-images", "2", "--plot", tmp_path / "fit.png",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "left out 1 block(s) with no quantizable op: model.1" in result.stdout
    noise = NoisePolynomial.load(str(out))
    assert noise.quantizable == ("model.0", "model.2", "model.3", "model.4")
    assert noise.predict(()) == 0.0 and noise.predict(noise.quantizable) > 0
    assert noise.fit["samples"] == 16 and noise.degree in (1, 2)
    samples = json.loads((tmp_path / "noise.samples.json").read_text())
    assert samples["kind"] == "noise-samples"
    assert len(samples["samples"]) == 16
    assert all(0.0 <= s["task"] <= 1.0 for s in samples["samples"])  # top-1 agreement
    assert (tmp_path / "noise.calibration.json").is_file()
    assert (tmp_path / "fit.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty", r"no images .* in the calibration folder"),
        ("missing", "calibration folder not found"),
        ("file", r"0\.png: --calib: not a folder"),
        ("broken", r"broken\.jpg: --calib: cannot decode image"),
        ("top-k", r"--top-k: top-K 5 is out of range: this model has 4 quantizable blocks"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tiny: Path, tmp_path: Path, case: str, message: str
) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    top_k = "4"
    if case == "missing":
        calib = tmp_path / "nowhere"
    elif case == "file":
        calib = tiny.parent / "images" / "0.png"
    elif case == "broken":
        (calib / "broken.jpg").write_bytes(b"not a jpeg")
    elif case == "top-k":
        calib, top_k = tiny.parent / "images", "5"
    result = _qsplit(
        "noise", tiny, "--out", tmp_path / "n.json", "--calib", calib, "--top-k", top_k
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert re.search(message, result.stderr.replace("\n", " ")), result.stderr
    assert not (tmp_path / "n.json").exists()
