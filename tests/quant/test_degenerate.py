"""Degenerate noise studies: diagnosed, recorded, warned about by ``qsplit noise`` and refused
by ``qsplit plan``; the same model with its own preprocessing passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gated_model import gated_model

from qsplit.model import analyze
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.quant import NoisePolynomial, diagnose

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "qsplit" / "examples"


def _qsplit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qsplit", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_diagnose_names_each_sign() -> None:
    ones = [np.ones((2, 3), np.float32)]
    assert not diagnose(ones, [0.0, 0.1, 0.2], 0.99).degenerate
    zeros = diagnose([np.zeros((2, 3), np.float32)], [0.0, 0.0], 1.0)
    assert zeros.output_mean_abs == 0.0
    assert [p.split(" (")[0] for p in zeros.problems] == [
        "the float model's outputs are ~0",
        "the largest measured noise 0 is within 16 float32 steps",
    ]
    # Outputs of magnitude 1: float32 steps there are 1.2e-7, so 1e-9 of noise is rounding.
    rounding = diagnose(ones, [0.0, 1e-9], 0.99)
    assert rounding.float_resolution == pytest.approx(2**-23)
    assert len(rounding.problems) == 1 and "float32 steps" in rounding.problems[0]
    poor = diagnose(ones, [0.0, 0.1], 0.5)
    assert poor.problems == (
        "the fit's held-out R² is 0.500 < 0.9 (if the outputs look sound, measure more masks: "
        "--samples)",
    )


def test_version_1_files_load_and_are_judged_by_their_r2(tmp_path: Path) -> None:
    body = {
        "kind": "noise-model",
        "schema_version": 1,
        "model": {"sha256": "0" * 64},
        "metric": "mean_abs_output_error",
        "quantizable": ["a"],
        "degree": 1,
        "power": 1,
        "intercept": 0.0,
        "terms": [{"blocks": ["a"], "coefficient": 0.1}],
        "fit": {"r2_test": 0.11},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(body))
    old = NoisePolynomial.load(str(path))
    assert old.diagnosis is not None and old.diagnosis.degenerate
    assert old.diagnosis.output_mean_abs is None
    body["fit"] = {"r2_test": 0.99}
    path.write_text(json.dumps(body))
    assert not NoisePolynomial.load(str(path)).diagnosis.degenerate  # type: ignore[union-attr]
    body["fit"] = {}
    path.write_text(json.dumps(body))
    assert NoisePolynomial.load(str(path)).diagnosis is None


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The gated model's noise study without a description ([0, 1] inputs: output 0) and with
    one that subtracts the mean, each with ``qsplit noise`` output; and planning inputs."""
    folder = tmp_path_factory.mktemp("gated")
    model = gated_model(folder)
    description = folder / "centred.yaml"
    description.write_text("preprocess: {mean: 0.5, std: 0.25}\ntask: {kind: generic}\n")
    common = ["--calib", folder / "images", "--top-k", "6", "--samples", "64", "--seed", "0"]
    bad = _qsplit("noise", model, "--out", folder / "bad.json", *common)
    good = _qsplit(
        "noise", model, "--out", folder / "good.json", *common, "--preprocess", description
    )
    _, graph = analyze(str(model))
    graph.save(str(folder / "graph.json"))
    profile = ComputeProfile(
        node="device",
        model_sha256=graph.model.sha256,
        granularity="block",
        blocks={b: BlockTiming(fp32_s=1e-3, int8_s=4e-4) for b in graph.block_names},
    )
    profile.save(str(folder / "device.json"))
    return {"folder": folder, "bad": bad, "good": good}


def test_noise_warns_when_outputs_are_zero(studies: dict) -> None:
    bad = studies["bad"]
    assert bad.returncode == 0, bad.stderr
    text = " ".join(bad.stdout.split())
    assert "warning: this noise model is degenerate: the float model's outputs are ~0" in text
    assert "Fix: give the model's own preprocessing (--preprocess FILE" in text
    noise = NoisePolynomial.load(str(studies["folder"] / "bad.json"))
    assert noise.diagnosis is not None and noise.diagnosis.output_max_abs == 0.0
    assert noise.diagnosis.degenerate


def test_noise_with_the_models_preprocessing_does_not_warn(studies: dict) -> None:
    good = studies["good"]
    assert good.returncode == 0, good.stderr
    assert "degenerate" not in good.stdout
    assert "preprocessing and task from" in " ".join(good.stdout.split())
    noise = NoisePolynomial.load(str(studies["folder"] / "good.json"))
    assert noise.diagnosis is not None and not noise.diagnosis.degenerate
    assert noise.fit["settings"]["preprocess"]["mean"] == [0.5]
    assert noise.fit["settings"]["task_metric"] == "cosine_vs_fp32"
    samples = json.loads((studies["folder"] / "good.samples.json").read_text())["samples"]
    assert all(s["task"] <= 1.0 + 1e-9 for s in samples)
    assert min(s["task"] for s in samples) < 1.0  # quantization changes the outputs


def _plan(studies: dict, noise: str, *extra: str) -> subprocess.CompletedProcess[str]:
    folder = studies["folder"]
    return _qsplit(
        "plan", "--graph", folder / "graph.json", "--infra", EXAMPLES / "device-only.yaml",
        "--profiles", folder / "device.json", "--noise", folder / noise,
        "--out", folder / "plan.json", *extra,
    )  # fmt: skip


def test_plan_refuses_a_degenerate_noise_model_it_could_quantize_with(studies: dict) -> None:
    for bound in ([], ["--noise-max", "0.01"]):
        result = _plan(studies, "bad.json", *bound)
        assert result.returncode == 2, result.stdout
        message = " ".join(result.stderr.split())
        assert "bad.json: diagnosis: the noise study behind this model measured nothing" in message
        assert "Fix: refit it with `qsplit noise`: give the model's own preprocessing" in message
    # A zero bound quantizes nothing, so the model is not relied on.
    assert _plan(studies, "bad.json", "--noise-max", "0").returncode == 0


def test_plan_uses_a_sound_noise_model(studies: dict) -> None:
    result = _plan(studies, "good.json", "--noise-max", "0.01")
    assert result.returncode == 0, result.stderr
