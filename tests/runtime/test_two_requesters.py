"""Two requesters of one deployment on the same agents — devices sharing an edge, or a
gateway — number their requests alike; each must get the outputs of its own inputs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx

import synthetic
from agents import infra_for, running_agents
from conftest import random_feeds, session
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect


def test_requesters_numbering_alike_get_their_own_outputs(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    assignment = {b: "a" if i < len(blocks) // 2 else "b" for i, b in enumerate(blocks)}
    model = onnx.load(path)
    reference = session(model)
    with running_agents("a", "b") as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, assignment, infra)

        def requester(seed: int) -> list[tuple[dict[str, np.ndarray], list[np.ndarray]]]:
            feeds = [random_feeds(model, 100 * seed + i) for i in range(8)]
            with connect(deployment, infra, graph_optimization="disabled") as s:
                results = list(s.stream(feeds, max_in_flight=4))
            expected = [reference.run(None, f) for f in feeds]
            return [(r.outputs, e) for r, e in zip(results, expected, strict=True)]

        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(requester, [1, 2]))
    for got, want in (pair for run in runs for pair in run):
        assert got is not None
        for name, expected in zip(deployment.model_outputs, want, strict=True):
            np.testing.assert_allclose(got[name], expected, atol=1e-5, rtol=0)


def test_two_devices_sharing_an_edge_each_get_their_own_outputs(tmp_path: Path) -> None:
    """Each device has its own agent and sends its edge's results back to it (device, edge,
    device): the shared edge must push each device's tensors to that device's agent, so the
    two deployments differ although their components are the same bytes."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    third = len(blocks) // 3
    nodes = [
        "device" if i < third else "edge" if i < 2 * third else "device" for i in range(len(blocks))
    ]
    assignment = dict(zip(blocks, nodes, strict=True))
    model = onnx.load(path)
    reference = session(model)
    with running_agents("one", "two", "edge") as agents:
        infras = [infra_for({"device": agents[d], "edge": agents["edge"]}) for d in ("one", "two")]
        deployments = [build_deployment(path, assignment, infra) for infra in infras]
        assert deployments[0].id != deployments[1].id

        def device(index: int) -> list[tuple[dict[str, np.ndarray] | None, list[np.ndarray]]]:
            feeds = [random_feeds(model, 10 * index + i) for i in range(6)]
            with connect(deployments[index], infras[index], graph_optimization="disabled") as s:
                results = list(s.stream(feeds, max_in_flight=3))
                runs_on = {r.node for result in results for r in result.record.runs}
            assert runs_on == {("one", "two")[index], "edge"}
            expected = [reference.run(None, f) for f in feeds]
            return [(r.outputs, e) for r, e in zip(results, expected, strict=True)]

        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(device, [0, 1]))
    for got, want in (pair for run in runs for pair in run):
        assert got is not None
        for name, expected in zip(deployments[0].model_outputs, want, strict=True):
            np.testing.assert_allclose(got[name], expected, atol=1e-5, rtol=0)
