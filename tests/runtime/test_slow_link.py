"""A live node behind a slow link stays connected however long one message takes on it.

zmq's heartbeats travel in the connection's byte stream, behind the data already sent: with
them, a tensor that took more than their 3 s timeout to cross a link dropped the live
connection and the tensor with it (the request failed with ``PeerDisconnected``). Real agent
processes, the testbed's link emulator in front of the receiving agent.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

import synthetic
from agents import infra_for, running_agents
from conftest import random_feeds, session
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect
from qsplit.testbed import LinkClock, LinkProxy, LinkShape

SHAPE = (1, 4, 512, 512)
"""4 MiB of float32: about 4.2 s on the 1 MB/s link, longer than the old 3 s timeout."""
SLOW = LinkShape(latency_s=0.005, bandwidth_bytes_per_s=1e6)
FAST = LinkShape(latency_s=0.005, bandwidth_bytes_per_s=100e6)


def test_a_tensor_longer_on_the_link_than_a_heartbeat_timeout_arrives(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.relay(SHAPE), tmp_path / "relay.onnx")
    first, second = analyze(str(path))[1].block_names
    model = onnx.load(path)
    with running_agents("device", "edge", args=("--no-shared-memory",)) as agents:
        edge = agents["edge"].address
        host, _, port = edge.rpartition(":")
        proxy = LinkProxy(lambda: (host, int(port)), LinkClock(SLOW), LinkClock(FAST))
        try:
            infra = infra_for(agents)
            nodes = tuple(
                replace(n, address=proxy.address) if n.name == "edge" else n for n in infra.nodes
            )
            infra = replace(infra, nodes=nodes)
            deployment = build_deployment(path, {first: "device", second: "edge"}, infra)
            with connect(deployment, infra, timeout_s=60.0, graph_optimization="disabled") as s:
                feeds = random_feeds(model)
                outputs, record = s.infer_timed(feeds)
                np.testing.assert_array_equal(outputs["out"], session(model).run(None, feeds)[0])
                assert record.bytes_per_link()[("device", "edge")] >= 4 * 2**20
                assert s.health()["edge"]["ok"]
        finally:
            proxy.close()
