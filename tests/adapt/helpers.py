"""A synthetic model split over real agents, with profiles and a planning problem made up to
make one plan clearly best, for the adaptive tests."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import synthetic
from conftest import random_feeds, session
from qsplit.infra import Infra
from qsplit.model import LayerGraph, analyze
from qsplit.plan import PlanningProblem
from qsplit.profile import BlockTiming, ComputeProfile

# The runtime tests' agent processes (tests/runtime/agents.py), shared, not copied.
sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))


@dataclass(frozen=True)
class Case:
    path: Path
    graph: LayerGraph
    feeds: list[dict[str, np.ndarray]]
    expected: list[np.ndarray]


def branchy(tmp_path: Path, requests: int) -> Case:
    """The branchy CNN, ``requests`` different random inputs and the whole model's outputs."""
    model = synthetic.branchy_cnn()
    path = synthetic.save(model, tmp_path / "branchy.onnx")
    graph = analyze(str(path))[1]
    whole = session(model)
    feeds = [random_feeds(model, seed=i) for i in range(requests)]
    return Case(path, graph, feeds, [whole.run(None, f)[0] for f in feeds])


def profiles(graph: LayerGraph, per_block_s: dict[str, float]) -> dict[str, ComputeProfile]:
    """Every block of ``graph`` taking ``per_block_s[node]`` on each node."""
    return {
        node: ComputeProfile(
            node=node,
            model_sha256=graph.model.sha256,
            granularity=graph.granularity,
            blocks={b: BlockTiming(fp32_s=t, int8_s=None) for b in graph.block_names},
        )
        for node, t in per_block_s.items()
    }


def problem(graph: LayerGraph, infra: Infra, per_block_s: dict[str, float]) -> PlanningProblem:
    """Latency only: the adaptive tests are about where time goes."""
    return PlanningProblem(graph, infra, profiles(graph, per_block_s), w_latency=1.0, w_energy=0.0)
