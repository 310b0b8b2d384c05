"""The demo's plan grid: which configurations it plans for a scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

import synthetic
from qsplit.demo import DemoConfig, ScenarioSpec
from qsplit.demo._plans import scenario_candidates
from qsplit.model import analyze
from qsplit.profile import BlockTiming, ComputeProfile, LinkProfile
from qsplit.quant import NoiseDiagnosis, NoisePolynomial, NoiseTerm

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "qsplit" / "examples"


@pytest.mark.parametrize("degenerate", [False, True])
def test_a_degenerate_noise_study_gives_fp32_plans_only(tmp_path: Path, degenerate: bool) -> None:
    _, graph = analyze(str(synthetic.save(synthetic.branchy_cnn(), tmp_path / "cnn.onnx")))
    blocks, sha = graph.block_names, graph.model.sha256
    profiles = {}
    for node, scale in (("device", 1.0), ("edge", 0.4)):
        timing = {b: BlockTiming(fp32_s=0.01 * scale, int8_s=0.002 * scale) for b in blocks}
        profiles[node] = tmp_path / f"{node}.json"
        ComputeProfile(node, sha, graph.granularity, timing).save(str(profiles[node]))
    problems = ("the fit's held-out R² is 0.5 < 0.9",) if degenerate else ()
    noise = NoisePolynomial(
        model_sha256=sha,
        quantizable=tuple(blocks[:3]),
        intercept=0.0,
        terms=tuple(NoiseTerm((b,), 0.01) for b in blocks[:3]),
        degree=1,
        diagnosis=NoiseDiagnosis(1.0, 2.0, 0.05, 1e-7, 0.5 if degenerate else 0.99, problems),
    )
    spec = ScenarioSpec("device+edge", EXAMPLES / "device-edge.yaml")
    config = DemoConfig(out=tmp_path, w_latency=(1.0,), noise_fractions=(0.0, 0.3, 1.0))
    entries = scenario_candidates(
        config, spec, graph, profiles, LinkProfile(()), noise, tmp_path, lambda: None
    )
    bounded = [e for e in entries if e.noise_max is not None]
    if degenerate:  # the planner would refuse the noise model: nothing quantized, no bound
        assert bounded == [] and not any(e.quantized for e in entries)
    else:  # int8 is 5x faster: the bounded plans quantize
        assert bounded and any(e.quantized for e in entries)
