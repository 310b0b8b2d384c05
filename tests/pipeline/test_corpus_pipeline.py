"""The whole pipeline on three small corpus models of three exporters, with no torch:

- ``yolo11n``: the bundled YOLO11n (Ultralytics, PyTorch exporter; random-rescaled weights),
- ``ppocr-cls``: PaddleOCR's angle classifier (paddle2onnx; trained weights), copied out of the
  ``rapidocr-onnxruntime`` package (dev extra) and pinned to 1x3x48x192 at opset 13,
- ``helper-cnn``: a small CNN written with ``onnx.helper`` at test time.

Each goes analyze → profile → noise → plan through the CLI, then its plan is deployed on real
agent processes and run, and a three-way split of it as well: the split's fp32 outputs must
equal the whole model's (max abs difference ≤ 1e-4 × the output's scale).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from agents import running_agents
from qsplit._jsonio import read_json
from qsplit.assets import sample_images
from qsplit.cli import app
from qsplit.infra import load_infra
from qsplit.model import LayerGraph, analyze
from qsplit.model.corpus import build, corpus_model
from qsplit.profile import ComputeProfile
from qsplit.runtime import build_deployment, connect, random_requests

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "qsplit" / "examples"
INFRA = EXAMPLES / "three-tier.yaml"
NODES = ("device", "edge", "cloud")
CI_MODELS = ("yolo11n", "ppocr-cls", "helper-cnn")
REQUESTS = 2
CALIBRATION_IMAGES = 2
"""Calibrating int8 on two of the five bundled images keeps profile and noise quick."""
RELATIVE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def agent_infra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """three-tier.yaml with its nodes' addresses replaced by three real local agents'."""
    document = yaml.safe_load(INFRA.read_text())
    with running_agents(*NODES) as agents:
        for node in document["nodes"]:
            node["address"] = agents[node["name"]].address
        path = tmp_path_factory.mktemp("agents") / "infra.yaml"
        path.write_text(yaml.safe_dump(document))
        yield path


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    for image in sample_images()[:CALIBRATION_IMAGES]:
        shutil.copy(image, folder)
    return folder


def cli(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def node_profiles(device_profile: Path) -> None:
    """Profiles of edge and cloud from the device's: every block timed once on this host (as
    ``qsplit profile --infra`` would, three times over) and scaled by the nodes' reference
    times, which is all ``--infra`` changes between the three."""
    device = ComputeProfile.load(str(device_profile))
    reference = {n.name: n.reference_time_s for n in load_infra(INFRA).nodes}
    for node in ("edge", "cloud"):
        scale = reference[node] / reference["device"]
        blocks = {
            name: replace(
                t,
                fp32_s=t.fp32_s * scale,
                int8_s=None if t.int8_s is None else t.int8_s * scale,
            )
            for name, t in device.blocks.items()
        }
        replace(device, node=node, blocks=blocks).save(
            str(device_profile.with_name(f"{node}.json"))
        )


def whole_model_outputs(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[list]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(None, f) for f in feeds]


def assert_exact(got: dict[str, np.ndarray], want: list[np.ndarray], names) -> None:
    for name, expected in zip(names, want, strict=True):
        scale = max(float(np.abs(expected).max()), np.finfo(np.float32).tiny)
        difference = float(np.abs(got[name] - expected).max())
        assert difference <= RELATIVE_TOLERANCE * scale, (name, difference, scale)


def segments(graph: LayerGraph) -> dict[str, str]:
    size = -(-len(graph.block_names) // len(NODES))
    return {b: NODES[i // size] for i, b in enumerate(graph.block_names)}


@pytest.mark.slow
@pytest.mark.parametrize("name", CI_MODELS)
def test_corpus_model_through_the_whole_pipeline(
    name: str, agent_infra: Path, calib: Path, tmp_path: Path
) -> None:
    spec = corpus_model(name)
    assert not spec.needs_torch  # CI has no torch
    model = build(spec, tmp_path / "cache").path
    graph_path, profiles = tmp_path / "graph.json", tmp_path / "profiles"
    cli("analyze", model, "--json", graph_path)
    cli("profile", model, "--node", "device", "--repetitions", 2, "--warmup", 1,
        "--calib", calib, "--out", profiles / "device.json")  # fmt: skip
    node_profiles(profiles / "device.json")
    cli("noise", model, "--samples", 18, "--top-k", 5, "--eval-images", 1,
        "--calib", calib, "--out", tmp_path / "noise.json")  # fmt: skip
    plan = tmp_path / "plan.json"
    planned = cli("plan", "--graph", graph_path, "--infra", INFRA, "--profiles", profiles,
                  "--noise", tmp_path / "noise.json", "--noise-max", 0, "--w-latency", 1,
                  "--w-energy", 0, "--time-limit", 30, "--out", plan)  # fmt: skip
    assert "device-only" in planned
    assert read_json(plan, "plan", (1,))["quantized"] == []

    outputs = tmp_path / "outputs"
    cli("run", plan, "--infra", agent_infra, "--model", model, "--random", REQUESTS,
        "--save-outputs", outputs, "--out", tmp_path / "results.json")  # fmt: skip
    _, graph = analyze(str(model))
    feeds = list(random_requests(graph.model.inputs, REQUESTS))
    expected = whole_model_outputs(model, feeds)
    names = [spec.name for spec in graph.model.outputs]
    for number, want in enumerate(expected):
        with np.load(outputs / f"{number:06d}.npz") as saved:
            assert_exact(dict(saved), want, names)

    infra = load_infra(agent_infra)
    deployment = build_deployment(model, segments(graph), infra)
    assert {c.node for c in deployment.components} == set(NODES)
    with connect(deployment, infra) as session:
        assert_exact(session.infer(feeds[0]), expected[0], names)
