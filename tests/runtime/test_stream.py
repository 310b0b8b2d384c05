"""Pipelined requests: bounded in flight, results in input order, ``qsplit.connect`` API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx

import qsplit
import synthetic
from agents import infra_for, running_agents
from conftest import random_feeds, session
from qsplit.model import analyze
from qsplit.runtime import build_deployment


def test_stream_returns_results_in_order_with_bounded_in_flight(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    model = onnx.load(path)
    feeds = [random_feeds(model, seed) for seed in range(8)]
    expected = [session(model).run(None, f)[0] for f in feeds]
    with running_agents("a", "b") as agents:
        infra = infra_for(agents)
        half = len(blocks) // 2
        assignment = {b: "a" if i < half else "b" for i, b in enumerate(blocks)}
        deployment = build_deployment(path, assignment, infra)
        name = deployment.model_outputs[0]
        with qsplit.connect(deployment, infra) as s:
            results = list(s.stream(feeds, max_in_flight=3))
            assert [r.index for r in results] == list(range(8))
            for result, want in zip(results, expected, strict=True):
                assert result.error is None
                np.testing.assert_allclose(result.outputs[name], want, atol=1e-4)
            assert s.stats()["a"]["counts"]["runs"] == 8


def test_import_qsplit_stays_light() -> None:
    check = "import qsplit, sys; assert not {'zmq', 'onnxruntime'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", check], check=True)
    assert callable(qsplit.connect)
