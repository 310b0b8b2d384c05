"""Dynamic input dimensions end to end: fixed by ``--input-shape`` at analysis, recorded in the
graph and the plan, and used by ``qsplit deploy`` and ``qsplit run``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

import synthetic
from agents import running_agents
from qsplit.cli import app
from qsplit.model import LayerGraph, analyze, load_model
from qsplit.plan import Plan
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.runtime import random_requests
from test_runtime_cli import qsplit, write_infra, write_plan

SHAPE = (2, 6, 8)


def _dynamic_model(tmp_path: Path, batch: str) -> Path:
    """The attention layer with a dynamic batch, symbolic (``batch``) or stored as ``-1``."""
    model = synthetic.attention(dynamic_batch=True)
    if batch == "minus-one":
        for value in (*model.graph.input, *model.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = -1
    return synthetic.save(model, tmp_path / f"attention-{batch}.onnx")


def _profiles(folder: Path, graph: LayerGraph) -> Path:
    """Made-up profiles (the edge 4× faster), enough for ``qsplit plan`` to place blocks."""
    folder.mkdir()
    for node, seconds in (("device", 4e-3), ("edge", 1e-3)):
        blocks = {b: BlockTiming(fp32_s=seconds) for b in graph.block_names}
        profile = ComputeProfile(node, graph.model.sha256, graph.granularity, blocks)
        profile.save(str(folder / f"{node}.json"))
    return folder


def _whole_model(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    proto = load_model(path, {"x": SHAPE}).proto
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([o.name for o in proto.graph.output], feeds)


@pytest.mark.parametrize("batch", ["symbolic", "minus-one"])
def test_a_dynamic_model_is_planned_deployed_and_run_at_the_analysed_shape(
    tmp_path: Path, batch: str
) -> None:
    model = _dynamic_model(tmp_path, batch)
    runner = CliRunner()
    graph_json = tmp_path / "graph.json"
    analysed = runner.invoke(
        app, ["analyze", str(model), "--input-shape", "x=2x6x8", "--json", str(graph_json)]
    )
    assert analysed.exit_code == 0, analysed.output
    graph = LayerGraph.load(str(graph_json))
    assert dict(graph.model.input_shapes) == {"x": SHAPE}
    profiles = _profiles(tmp_path / "profiles", graph)
    plan = tmp_path / "plan.json"
    with running_agents("device", "edge") as agents:
        infra = write_infra(tmp_path / "infra.yaml", agents)
        planned = runner.invoke(
            app,
            [
                *("plan", "--graph", str(graph_json), "--infra", str(infra)),
                *("--profiles", str(profiles), "--out", str(plan)),
            ],
        )
        assert planned.exit_code == 0, planned.output
        assert Plan.load(plan).input_shapes == {"x": SHAPE}
        common = ["--infra", str(infra), "--model", str(model)]
        outputs = tmp_path / "outputs"
        ran = runner.invoke(
            app,
            [
                *("run", str(plan), *common, "--random", "2"),
                *("--out", str(tmp_path / "r.json"), "--save-outputs", str(outputs)),
            ],
        )
        assert ran.exit_code == 0, ran.output
        again = runner.invoke(app, ["deploy", str(plan), *common, "--input-shape", "x=2x6x8"])
        assert again.exit_code == 0, again.output
        other = qsplit("deploy", str(plan), *common, "--input-shape", "x=3x6x8")
    assert other.returncode == 2
    assert "x=3x6x8 differs from the plan's x=2x6x8" in other.stderr
    specs = graph.model.inputs
    for index, feeds in enumerate(random_requests(specs, 2)):
        with np.load(outputs / f"{index:06d}.npz") as saved:
            (expected,) = _whole_model(model, feeds)
            np.testing.assert_allclose(saved["y"], expected, rtol=1e-5, atol=1e-6)


def test_a_plan_without_shapes_takes_them_from_the_command_line(tmp_path: Path) -> None:
    """Plans written before shapes were recorded: ``--input-shape`` gives them, and without it
    the error says so."""
    model = _dynamic_model(tmp_path, "symbolic")
    blocks = analyze(str(model), {"x": SHAPE})[1].block_names
    plan = write_plan(tmp_path / "plan.json", model, dict.fromkeys(blocks, "edge"))
    with running_agents("device", "edge") as agents:
        infra = write_infra(tmp_path / "infra.yaml", agents)
        run = ["run", str(plan), "--infra", str(infra), "--model", str(model), "--random", "1"]
        run += ["--out", str(tmp_path / "r.json")]
        missing = qsplit(*run)
        given = qsplit(*run, "--input-shape", "x=2x6x8")
    assert missing.returncode == 2
    assert "dynamic dimensions" in missing.stderr and "--input-shape x=1x6x8" in missing.stderr
    assert given.returncode == 0, given.stdout + given.stderr
