"""Link precision in the noise study: masks over blocks and link variables, measured on the
model the runtime deploys, fitted, and validated on held-out configurations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import quantizable_branchy, session
from qsplit.quant import (
    NoisePolynomial,
    candidate_blocks,
    candidate_links,
    fit_noise,
    float_outputs,
    is_link_variable,
    link_candidates,
    link_masks,
    link_quantized_proto,
    link_variable,
    sample_noise,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model, graph, quantizer, feeds = quantizable_branchy(tmp_path_factory.mktemp("n"))
    blocks = candidate_blocks(graph, quantizer, top_k=4)
    tensors = candidate_links(graph, 4)
    return model, graph, quantizer, feeds, blocks, tensors


def test_link_masks_respect_one_precision_and_quantized_producers(setup) -> None:
    _, graph, _, _, blocks, tensors = setup
    assert len(tensors) == 4
    others = set(link_candidates(graph)) - set(tensors)
    smallest = min(graph.tensor_by_name[t].bytes for t in tensors)
    assert all(graph.tensor_by_name[t].bytes <= smallest for t in others)
    variables, masks = link_masks(graph, blocks, tensors, 120, seed=4)
    assert variables[: len(blocks)] == blocks and len(variables) == len(blocks) + 8
    assert len(set(masks)) == len(masks) == 120
    assert masks[0] == (0,) * len(variables)
    assert masks[2] == (0,) * len(blocks) + (0, 1) * len(tensors)  # every link at int8
    for mask in masks:
        chosen = {v for v, bit in zip(variables, mask, strict=True) if bit}
        for t in tensors:
            both = {link_variable(t, "fp16"), link_variable(t, "int8")}
            assert len(both & chosen) <= 1
            if graph.tensor_by_name[t].producer in chosen:
                assert not both & chosen
    assert sum(any(mask[len(blocks) :]) and any(mask[: len(blocks)]) for mask in masks) > 40


def test_a_link_sample_measures_the_deployed_surgery(setup) -> None:
    """What the study measures for a link variable is the output of exactly the model
    ``link_quantized_proto`` builds (the runtime's surgery), compared with the float model."""
    _, graph, quantizer, feeds, _, tensors = setup
    tensor = tensors[0]
    variables = [link_variable(tensor, "int8"), link_variable(tensor, "fp16")]
    int8, fp16 = sample_noise(quantizer, variables, [(1, 0), (0, 1)], feeds, workers=1)
    proto = link_quantized_proto(
        quantizer.quantize(()), graph, {tensor: "int8"}, quantizer.calibration
    )
    reference = float_outputs(quantizer, feeds)
    runs = session(proto)
    pairs = zip(reference, feeds, strict=True)
    expected = np.mean([np.abs(r - runs.run(None, f)[0]).mean() for r, f in pairs])
    # The study's sessions optimise the graph fully, which reorders float sums a little.
    assert int8.noise == pytest.approx(expected, rel=1e-3)
    assert 0 < fp16.noise < int8.noise


def test_fit_predicts_held_out_link_configurations(setup, tmp_path: Path) -> None:
    model, graph, quantizer, feeds, blocks, tensors = setup
    variables, masks = link_masks(graph, blocks, tensors, 200, seed=0)
    samples = sample_noise(quantizer, variables, masks, feeds)
    poly = fit_noise(samples, variables, model.info.sha256)
    assert poly.quantizable == blocks
    assert poly.links == tuple(v for v in variables if is_link_variable(v))
    assert any(is_link_variable(name) for term in poly.terms for name in term.blocks)
    assert poly.fit["r2_test"] > 0.9
    # Fresh configurations, never seen by the fit (another seed, duplicates removed).
    _, fresh = link_masks(graph, blocks, tensors, 260, seed=7)
    unseen = [m for m in fresh if m not in set(masks)][:40]
    measured = sample_noise(quantizer, variables, unseen, feeds)
    predicted = np.array([poly.predict(s.blocks) for s in measured])
    actual = np.array([s.noise for s in measured])
    r2 = 1 - np.sum((predicted - actual) ** 2) / np.sum((actual - actual.mean()) ** 2)
    assert r2 > 0.9, r2
    poly.save(str(tmp_path / "noise.json"))
    assert NoisePolynomial.load(str(tmp_path / "noise.json")) == poly


def test_a_noise_file_from_before_link_precision_loads_without_links(tmp_path: Path) -> None:
    body = {
        "kind": "noise-model",
        "schema_version": 2,
        "model": {"sha256": "abc"},
        "quantizable": ["b0"],
        "degree": 1,
        "intercept": 0.0,
        "terms": [{"blocks": ["b0"], "coefficient": 0.1}],
        "fit": {"r2_test": 0.99},
        "diagnosis": None,
    }
    (tmp_path / "old.json").write_text(json.dumps(body))
    old = NoisePolynomial.load(str(tmp_path / "old.json"))
    assert old.links == () and old.predict(["b0"]) == pytest.approx(0.1)
