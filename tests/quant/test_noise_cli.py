"""``qsplit noise`` end to end on a tiny image classifier, and its refusals of bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_model import tiny_classifier

from qsplit.quant import NoisePolynomial

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_classifier(tmp_path_factory.mktemp("tiny"))


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
    assert noise.fit["samples"] == 16 and (noise.fit["degree"], noise.fit["power"]) == (
        noise.degree,
        noise.power,
    )
    assert noise.fit["settings"]["activations"] == "uint8 asymmetric"
    assert noise.fit["settings"]["eval_images"] == 2
    samples = json.loads((tmp_path / "noise.samples.json").read_text())
    assert samples["kind"] == "noise-samples"
    assert len(samples["samples"]) == 16
    assert samples["settings"] == noise.fit["settings"]
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
