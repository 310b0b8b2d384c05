"""A device behind an edge gateway on the testbed: relayed data crosses both emulated links."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

import qsplit
import synthetic
from conftest import WAKE_UP_SLACK_S, random_feeds, session
from qsplit import testbed as tb
from qsplit.model import analyze
from qsplit.profile import HostReference
from qsplit.runtime import build_deployment, connect

EXAMPLE = Path(qsplit.__file__).parent / "examples" / "device-behind-edge.yaml"


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory, host: HostReference) -> Iterator[tb.Testbed]:
    state = tmp_path_factory.mktemp("chain") / "state"
    with tb.Testbed.up(EXAMPLE, state, owner_pid=os.getpid(), host=host) as running:
        yield running


def test_a_relayed_request_takes_the_sum_of_the_hops(testbed: tb.Testbed, tmp_path: Path) -> None:
    """Cloud-only on device ↔ edge ↔ cloud: inputs go device → edge → cloud and outputs come back
    cloud → edge → device, each hop through its own link emulator, so the request takes about
    2 × (5 + 50) ms plus the bytes at each hop's rate — the route's store-and-forward time."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    infra = testbed.infra()
    assert not infra.has_link("device", "cloud")
    deployment = build_deployment(path, dict.fromkeys(blocks, "cloud"), infra)
    model = onnx.load(path)
    with connect(deployment, infra, graph_optimization="disabled") as s:
        s.infer(random_feeds(model, 99))  # warm-up: connections finish their handshakes
        for seed in range(3):
            feeds = random_feeds(model, seed)
            outputs, record = s.infer_timed(feeds)
            for name, want in zip(
                deployment.model_outputs, session(model).run(None, feeds), strict=True
            ):
                np.testing.assert_array_equal(outputs[name], want)
            sent = record.bytes_per_link()
            assert set(sent) == {
                ("device", "edge"), ("edge", "cloud"), ("cloud", "edge"), ("edge", "device")
            }  # fmt: skip
            for hop in record.transfers:
                link = infra.link(hop.source, hop.target)
                nominal = link.transfer_s(hop.bytes)
                assert nominal - 1e-3 <= hop.transfer_s <= nominal + WAKE_UP_SLACK_S, (hop, nominal)
            routed = infra.route("device", "cloud").transfer_s(sent[("device", "edge")])
            routed += infra.route("cloud", "device").transfer_s(sent[("cloud", "edge")])
            (run,) = record.runs
            moving = record.latency_s - run.compute_s
            assert routed - 2e-3 <= moving <= routed + 2 * WAKE_UP_SLACK_S, (moving, routed)
