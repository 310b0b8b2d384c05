"""The demo's plan grid: which configurations it plans for a scenario."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import synthetic
from qsplit.demo import DemoConfig, ScenarioSpec
from qsplit.demo._plans import configuration, scenario_candidates
from qsplit.model import analyze
from qsplit.profile import (
    CODEC_OPERATIONS,
    BlockTiming,
    CodecCost,
    CodecTimes,
    CompressionTable,
    ComputeProfile,
    LinkProfile,
)
from qsplit.quant import NoiseDiagnosis, NoisePolynomial, NoiseTerm, link_candidates

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
    table = CompressionTable(graph.model.sha256, {})
    entries = scenario_candidates(
        config, spec, graph, profiles, LinkProfile(()), noise, table, tmp_path, lambda: None
    )
    bounded = [e for e in entries if e.noise_max is not None]
    if degenerate:  # the planner would refuse the noise model: nothing quantized, no bound
        assert bounded == [] and not any(e.quantized for e in entries)
    else:  # int8 is 5x faster: the bounded plans quantize
        assert bounded and any(e.quantized for e in entries)


def test_plans_compress_what_crosses_a_slow_link_and_baselines_do_not(tmp_path: Path) -> None:
    """With codec times on every node and tensors that lz4 shrinks 20×, the demo's plan for a
    forced split sends what crosses the 5 MB/s uplink compressed; the entry says so, and the
    configuration that is run (and deduplicated) includes it."""
    _, graph = analyze(str(synthetic.save(synthetic.branchy_cnn(), tmp_path / "cnn.onnx")))
    blocks, sha = graph.block_names, graph.model.sha256
    cheap = dict.fromkeys(CODEC_OPERATIONS, CodecCost(1e-5, 1e-10))
    profiles = {}
    for node, first, rest in (("device", 1e-4, 0.1), ("edge", 10.0, 1e-4)):
        timing = {b: BlockTiming(fp32_s=first if b == blocks[0] else rest) for b in blocks}
        profiles[node] = tmp_path / f"{node}.json"
        codec = CodecTimes(dict(cheap), dict(cheap))
        ComputeProfile(node, sha, graph.granularity, timing, codec=codec).save(str(profiles[node]))
    ratios = {(t, p, c): 0.05 for t in link_candidates(graph) for p in ("fp32",) for c in ("lz4",)}
    noise = NoisePolynomial(sha, (), 0.0, (), 1)
    spec = ScenarioSpec("device+edge", EXAMPLES / "device-edge.yaml")
    config = DemoConfig(out=tmp_path, w_latency=(1.0,), noise_fractions=(0.0,))
    entries = scenario_candidates(
        config,
        spec,
        graph,
        profiles,
        LinkProfile(()),
        noise,
        CompressionTable(sha, ratios),
        tmp_path,
        lambda: None,
    )
    (planned,) = [e for e in entries if e.kind == "plan"]
    # The first block is cheap only on the device, the others only on the edge: a split.
    assert planned.assignment[blocks[0]] == "device" and "edge" in planned.assignment.values()
    assert planned.link_codec and set(planned.link_codec.values()) == {"lz4"}
    assert not planned.link_precision
    uncompressed = replace(planned, link_codec={})
    assert configuration(planned) != configuration(uncompressed)
    assert all(not e.link_codec and not e.link_precision for e in entries if e.kind != "plan")
