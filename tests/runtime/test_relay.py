"""Routes in the runtime: real agents relay real tensors where two nodes have no direct link."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

import synthetic
from agents import AgentProcess, infra_for, running_agents
from conftest import random_feeds, session
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect
from qsplit.runtime.errors import TransportError

CHAIN = (("device", "edge"), ("edge", "cloud"))
"""A device behind an edge gateway: no direct device ↔ cloud link."""


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, AgentProcess]]:
    with running_agents("device", "edge", "cloud") as running:
        yield running


def _check_outputs(path: Path, assignment: dict[str, str], agents, seeds=(0, 1)):
    """Run the split on the chain; its outputs must equal the whole model's, bit for bit."""
    model = onnx.load(path)
    infra = infra_for(agents, links=CHAIN)
    deployment = build_deployment(path, assignment, infra)
    records = []
    with connect(deployment, infra, graph_optimization="disabled") as s:
        for seed in seeds:
            feeds = random_feeds(model, seed)
            outputs, record = s.infer_timed(feeds)
            expected = session(model).run(None, feeds)
            for name, want in zip(deployment.model_outputs, expected, strict=True):
                np.testing.assert_array_equal(outputs[name], want)
            records.append(record)
        stats = s.stats()
    return deployment, records, stats


def test_device_and_cloud_exchange_tensors_through_the_edge_relay(
    agents: dict[str, AgentProcess], tmp_path: Path
) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    split = {b: "device" if i < len(blocks) // 2 else "cloud" for i, b in enumerate(blocks)}
    deployment, records, stats = _check_outputs(path, split, agents)
    assert deployment.relays == {("device", "cloud"): ("edge",), ("cloud", "device"): ("edge",)}
    assert set(deployment.addresses) == {"device", "edge", "cloud"}  # the relay is reached too
    for record in records:
        assert {r.node for r in record.runs} == {"device", "cloud"}
        sent = record.bytes_per_link()
        # every byte between device and cloud crossed the edge, in both directions
        assert ("device", "cloud") not in sent and ("cloud", "device") not in sent
        assert sent[("device", "edge")] == sent[("edge", "cloud")] > 0
        assert sent[("cloud", "edge")] == sent[("edge", "device")] > 0
    assert "runs" not in stats["edge"]["counts"]
    assert stats["edge"]["counts"]["relayed"] >= 2 * len(records)


def test_model_inputs_and_outputs_of_a_cloud_only_plan_are_relayed(
    agents: dict[str, AgentProcess], tmp_path: Path
) -> None:
    """The requester sends its inputs to the cloud and gets the outputs back through the edge."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    _, (record,), _ = _check_outputs(path, dict.fromkeys(blocks, "cloud"), agents, seeds=(7,))
    sent = record.bytes_per_link()
    assert set(sent) == {
        ("device", "edge"),
        ("edge", "cloud"),
        ("cloud", "edge"),
        ("edge", "device"),
    }
    assert sent[("device", "edge")] == sent[("edge", "cloud")]
    assert sent[("cloud", "edge")] == sent[("edge", "device")]


def test_a_dead_relay_is_named_at_once(tmp_path: Path) -> None:
    """The relay runs no component, yet a request whose data needs it fails naming it, without
    waiting for the request's deadline."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    feeds = random_feeds(onnx.load(path))
    with running_agents("device", "edge", "cloud") as agents:
        infra = infra_for(agents, links=CHAIN)
        deployment = build_deployment(path, dict.fromkeys(blocks, "cloud"), infra)
        with connect(deployment, infra, timeout_s=20.0) as s:
            s.infer(feeds)
            agents["edge"].kill()
            start = time.monotonic()
            with pytest.raises(TransportError) as caught:
                s.infer(feeds)
            assert time.monotonic() - start < 5.0
            assert caught.value.peer == "edge" and "'edge'" in str(caught.value)
