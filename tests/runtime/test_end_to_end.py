"""Real agent processes on loopback reproduce the whole model's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import synthetic
from agents import infra_for, running_agents
from conftest import random_feeds, session
from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.runtime import AgentSettings, build_deployment, connect
from qsplit.runtime._agent import Agent, _Component, _execute, _fixed_outputs


def by_segments(blocks: tuple[str, ...], nodes: tuple[str, ...]) -> dict[str, str]:
    """Contiguous runs of blocks per node, in order (what plans usually look like)."""
    size = -(-len(blocks) // len(nodes))
    return {b: nodes[i // size] for i, b in enumerate(blocks)}


def test_synthetic_model_split_over_three_agents(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    _, graph = analyze(str(path))
    nodes = ("a", "b", "c")
    with running_agents(*nodes) as agents:
        deployment = build_deployment(
            path, by_segments(graph.block_names, nodes), infra_for(agents)
        )
        assert len(deployment.components) >= 3
        model = onnx.load(path)
        with connect(deployment, infra_for(agents), graph_optimization="disabled") as s:
            for seed in range(3):
                feeds = random_feeds(model, seed)
                expected = session(model).run(None, feeds)
                outputs, record = s.infer_timed(feeds)
                for name, want in zip(deployment.model_outputs, expected, strict=True):
                    np.testing.assert_allclose(outputs[name], want, atol=1e-5, rtol=0)
                assert {r.node for r in record.runs} == set(nodes)
                assert sum(t.bytes for t in record.transfers) > 0


@pytest.mark.slow
def test_yolo11n_three_way_split(yolo11n_path: Path) -> None:
    _, graph = analyze(str(yolo11n_path))
    nodes = ("device", "edge", "cloud")
    with running_agents(*nodes) as agents:
        infra = infra_for(agents)
        deployment = build_deployment(yolo11n_path, by_segments(graph.block_names, nodes), infra)
        model = onnx.load(yolo11n_path)
        feeds = {"images": np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)}
        (expected,) = session(model).run(None, feeds)
        with connect(deployment, infra, graph_optimization="disabled") as s:
            outputs = s.infer(feeds)
        np.testing.assert_allclose(outputs["output0"], expected, atol=1e-5, rtol=0)


def test_padding_factor_pads_each_run(tmp_path: Path) -> None:
    """A node emulated 40× slower takes 40× the component's time measured at deploy, every run
    alike (load on the shared cores is not multiplied by the factor), and really takes it."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    _, graph = analyze(str(path))
    model = onnx.load(path)
    with running_agents("slow", args=("--padding-factor", "40")) as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, dict.fromkeys(graph.block_names, "slow"), infra)
        with connect(deployment, infra) as s:
            computes = set()
            for seed in range(3):
                _, record = s.infer_timed(random_feeds(model, seed))
                (run,) = record.runs
                assert record.latency_s >= run.compute_s > 0
                computes.add(run.compute_s)
            assert len(computes) == 1


def _flat_profile(graph, node: str, block_s: float) -> ComputeProfile:
    timing = BlockTiming(fp32_s=block_s, int8_s=None, fp32_spread_s=0.0, int8_spread_s=0.0)
    blocks = dict.fromkeys(graph.block_names, timing)
    return ComputeProfile(node, graph.model.sha256, graph.granularity, blocks)


@pytest.mark.parametrize("emulating", [("--padding-factor", "2"), ("--emulated",)])
def test_an_emulating_agent_runs_a_component_in_its_profiled_time(
    tmp_path: Path, emulating: tuple[str, ...]
) -> None:
    """With profiles, each component carries the node's profiled time for it, and an agent that
    emulates a slower node runs it in exactly that time (not padding × its own runs, which load
    on the host inflates); an agent that emulates nothing ignores it. A testbed agent
    (``--emulated``) does so even at factor 1, a host within 5 % of the node's speed."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    _, graph = analyze(str(path))
    model = onnx.load(path)
    assignment = by_segments(graph.block_names, ("slow", "real"))
    with (
        running_agents("slow", args=emulating) as slow,
        running_agents("real") as real,
    ):
        infra = infra_for({**slow, **real})
        profiles = {n: _flat_profile(graph, n, 0.04) for n in ("slow", "real")}
        deployment = build_deployment(path, assignment, infra, profiles=profiles)
        targets = {c.node: c.compute_s for c in deployment.components}
        slow_blocks = sum(node == "slow" for node in assignment.values())
        assert targets["slow"] == pytest.approx(0.04 * slow_blocks)
        with connect(deployment, infra) as s:
            for seed in range(3):
                _, record = s.infer_timed(random_feeds(model, seed))
                runs = {r.node: r.compute_s for r in record.runs}
                assert targets["slow"] <= runs["slow"] < targets["slow"] + 0.1
                assert runs["real"] < targets["real"]
    other = _flat_profile(graph, "slow", 0.04)
    stale = ComputeProfile("slow", "0" * 64, other.granularity, dict(other.blocks))
    with pytest.raises(InputError, match="profile of 'slow' is not of this model"):
        build_deployment(path, assignment, infra, profiles={"slow": stale})


@pytest.mark.parametrize(("statistic", "reference_s"), [("min", 0.5), ("median", 0.02)])
def test_a_min_agent_lowers_an_inflated_reference(
    tmp_path: Path, statistic: str, reference_s: float
) -> None:
    """An agent summarising by the minimum pads to the least time it has seen: a reference
    inflated by load at deploy time (here 0.5 s for a run of a few ms) is replaced by the first
    faster run. With the median, the deploy-time reference stays as it was."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model = onnx.load(path)
    settings = AgentSettings(
        name="slow", listen="127.0.0.1:0", padding_factor=3.0, statistic=statistic
    )
    agent = Agent(settings, endpoint=None, models=None)  # type: ignore[arg-type]
    sess = session(model)
    component = _Component(
        name="c0",
        inputs=tuple(i.name for i in sess.get_inputs()),
        outputs=tuple(o.name for o in sess.get_outputs()),
        routes={},
        returns=(),
        peers={},
        via={},
        return_via=[],
        quant={},
        session=sess,
        fixed_outputs={},
        reference_s=reference_s,
    )
    _, compute_s = agent._compute(component, random_feeds(model), {})
    if statistic == "min":
        assert component.reference_s < 0.1 and compute_s < 0.3
        assert compute_s == pytest.approx(3.0 * component.reference_s, rel=0.05, abs=1e-3)
    else:
        assert component.reference_s == reference_s
        assert compute_s == pytest.approx(3.0 * reference_s, rel=0.05)


def test_outputs_can_be_computed_into_given_arrays(tmp_path: Path) -> None:
    """How an agent has ORT write outputs straight into shared memory: the given arrays hold
    exactly what a plain run returns, the other outputs come back as usual."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model = onnx.load(path)
    sess = session(model)
    outputs = tuple(o.name for o in sess.get_outputs())
    fixed = _fixed_outputs(sess)
    assert set(fixed) == set(outputs) and len(outputs) > 1
    feeds = random_feeds(model)
    expected = sess.run(list(outputs), feeds)
    shape, dtype = fixed[outputs[0]]
    into = {outputs[0]: np.full(shape, np.nan, dtype)}
    values = _execute(sess, outputs, feeds, into)
    assert values[0] is into[outputs[0]]
    for value, want in zip(values, expected, strict=True):
        np.testing.assert_array_equal(value, want)
