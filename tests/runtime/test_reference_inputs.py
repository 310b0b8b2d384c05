"""Components are timed on values they can receive: the reference run of the whole model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

import synthetic
from agents import infra_for, running_agents
from conftest import session
from qsplit.assets import sample_images_dir
from qsplit.infra import Infra, Link, Node
from qsplit.model import analyze
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.quant import image_feeds
from qsplit.runtime import build_deployment, connect

SCALES = [1.0, 1.0, 2.0, 2.0]


def test_an_emulated_node_times_a_component_on_scales_another_one_computes(
    tmp_path: Path,
) -> None:
    """The Resize component's ``scales`` come from the other node; timed on random values at
    deploy (negative scales) ORT raised. It is deployed with its reference inputs, the
    first bundled image and the scales the other component computes from it, and runs."""
    path = synthetic.save(synthetic.computed_resize(), tmp_path / "resize.onnx")
    model, _ = analyze(str(path))
    assignment = {"scales": "a", "stem": "b", "up": "b"}
    image = image_feeds(model, sample_images_dir(), limit=1)[0]
    with running_agents("a", "b", args=("--padding-factor", "3")) as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, assignment, infra)
        up = next(c for c in deployment.components if c.node == "b")
        assert set(up.reference) == {"x", "scales"}
        np.testing.assert_array_equal(up.reference["scales"], SCALES)
        np.testing.assert_array_equal(up.reference["x"], image["x"])
        with connect(deployment, infra) as s:
            outputs = s.infer(image)
    (expected,) = session(onnx.load(path)).run(None, image)
    np.testing.assert_array_equal(outputs["out"], expected)


def test_only_components_without_a_profiled_time_carry_reference_inputs(tmp_path: Path) -> None:
    """An agent times a component at deploy only when the deployment gives it no ``compute_s``,
    so only those components carry their inputs (deploy messages stay small)."""
    path = synthetic.save(synthetic.computed_resize(), tmp_path / "resize.onnx")
    _, graph = analyze(str(path))
    timings = {b: BlockTiming(fp32_s=1e-3) for b in graph.block_names}
    profile = ComputeProfile("a", graph.model.sha256, graph.granularity, timings)
    nodes = tuple(Node(n, "edge", 1.0, 1.0, 2**30, address="127.0.0.1:9") for n in ("a", "b"))
    infra = Infra(
        device="a", nodes=nodes, links=(Link("a", "b", 1e8, 0.0), Link("b", "a", 1e8, 0.0))
    )
    assignment = {"scales": "a", "stem": "b", "up": "b"}
    deployment = build_deployment(path, assignment, infra, profiles={"a": profile})
    by_node = {c.node: c for c in deployment.components}
    assert by_node["a"].compute_s is not None and by_node["a"].reference == {}
    assert by_node["b"].compute_s is None and set(by_node["b"].reference) == {"x", "scales"}
