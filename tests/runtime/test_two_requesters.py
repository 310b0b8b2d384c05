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
