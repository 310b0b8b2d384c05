"""The requester's fixed costs, measured with null requests through a real agent."""

from __future__ import annotations

import math
from pathlib import Path

from typer.testing import CliRunner

import synthetic
from agents import infra_for, running_agents
from qsplit.cli import app
from qsplit.profile import ComputeProfile, Overhead
from qsplit.runtime import health_of, measure_overhead
from test_runtime_cli import write_infra


def test_null_requests_give_the_device_agents_fixed_costs() -> None:
    with running_agents("device") as agents:
        overhead = measure_overhead(infra_for(agents), requests=5, warmup=1)
    # A request and its two local messages (inputs in, outputs back) are never free; on
    # loopback they take well under a second, however busy the machine.
    assert 0.0 < overhead.message_s < 1.0
    assert 0.0 <= overhead.request_s < 1.0
    assert overhead.local_bandwidth_bytes_per_s > 0
    assert math.isinf(overhead.local_bandwidth_bytes_per_s) or overhead.local_message_s(
        1 << 20
    ) > overhead.local_message_s(0)


def test_the_agent_keeps_no_null_deployment() -> None:
    with running_agents("device") as agents:
        measure_overhead(infra_for(agents), requests=2, warmup=1)
        health = health_of(agents["device"].address, timeout_s=10)
    assert health is not None
    assert health["deployments"] == {}


def test_qsplit_profile_measures_them_for_the_device_when_asked(tmp_path: Path) -> None:
    model = synthetic.save(synthetic.branchy_cnn(), tmp_path / "cnn.onnx")
    out = tmp_path / "device.json"
    with running_agents("device", "edge") as agents:
        infra = write_infra(tmp_path / "infra.yaml", agents)
        common = [str(model), "--infra", str(infra), "--no-int8", "--repetitions", "2"]
        result = CliRunner().invoke(
            app, ["profile", *common, "--node", "device", "--out", str(out), "--overhead"]
        )
        assert result.exit_code == 0, result.output
        refused = CliRunner().invoke(
            app, ["profile", *common, "--node", "edge", "--out", str(out), "--overhead"]
        )
    assert (ComputeProfile.load(str(out)).overhead or Overhead()).message_s > 0
    assert refused.exit_code == 2 and "--overhead" in refused.output
