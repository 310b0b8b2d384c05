"""Devices without Ray reach Ray Serve through a gateway agent (``qsplit agent --backend ray``):
the device's part runs in a plain agent process, the shared part as Serve applications the
gateway deploys, and the whole model's outputs come back. Devices deploying the same component
share one application (their requests meet in one batcher); it goes when the last leaves."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import served  # noqa: F401  (puts tests/runtime on the path, for the agent helpers)
import synthetic
from agents import infra_for, running_agents
from conftest import random_feeds, session
from qsplit.cli import app
from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect

pytest.importorskip("ray", reason="Ray is not installed (pip install 'qsplit[ray]')")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

GATEWAY_PREFIX = "qsplit-gw-edge-"


def _gateway_applications() -> set[str]:
    from ray import serve

    return {a for a in serve.status().applications if a.startswith(GATEWAY_PREFIX)}


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_ray_free_devices_run_their_plans_through_one_gateway(
    embedded_ray: Callable[[], str], tmp_path: Path
) -> None:
    """Two devices, each with its own plain agent, deploy their plans (device, then edge) on
    one gateway: each gets the whole model's outputs, the edge's component is one Serve
    application for both, kept while either still has it deployed."""
    address = embedded_ray()
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    assignment = {b: "device" if i < len(blocks) // 2 else "edge" for i, b in enumerate(blocks)}
    gateway = ("--backend", "ray", "--ray-address", address, "--max-batch", "4")
    model = onnx.load(path)
    reference = session(model)
    feeds = [random_feeds(model, seed) for seed in range(6)]
    expected = [reference.run(None, f) for f in feeds]
    with running_agents(
        "one", "two", "edge", own_args=lambda n: gateway if n == "edge" else ()
    ) as agents:
        infras = [infra_for({"device": agents[d], "edge": agents["edge"]}) for d in ("one", "two")]
        deployments = [build_deployment(path, assignment, infra) for infra in infras]
        edge_components = sum(c.node == "edge" for c in deployments[0].components)
        assert edge_components >= 1
        sessions = [
            connect(d, infra, graph_optimization="disabled")
            for d, infra in zip(deployments, infras, strict=True)
        ]
        try:
            assert len(_gateway_applications()) == edge_components
            with ThreadPoolExecutor(2) as pool:
                results = list(
                    pool.map(lambda i: list(sessions[i].stream(feeds, max_in_flight=3)), [0, 1])
                )
            for result in (r for rs in results for r in rs):
                assert result.outputs is not None, result.error
                want = expected[result.index]
                for name, value in zip(deployments[0].model_outputs, want, strict=True):
                    np.testing.assert_allclose(result.outputs[name], value, atol=1e-5, rtol=0)
            # The devices' agents never loaded Ray; the gateway did.
            assert "_raylet" not in _maps(agents["one"].process.pid)
            assert "_raylet" in _maps(agents["edge"].process.pid)
            # One device leaves: the other still runs on the same application.
            sessions[0].undeploy()
            assert len(_gateway_applications()) == edge_components
            out = sessions[1].infer(feeds[0])
            np.testing.assert_allclose(
                out[deployments[1].model_outputs[0]], expected[0][0], atol=1e-5
            )
            # The last one leaves: the application goes.
            sessions[1].undeploy()
            deadline = time.monotonic() + 60
            while _gateway_applications() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not _gateway_applications()
        finally:
            for s in sessions:
                s.close()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--ray-address", "127.0.0.1:1"], "--ray-address needs --backend ray"),
        (["--backend", "ray", "--replicas", "2", "--max-replicas", "1"], "--max-replicas"),
        (["--backend", "ray", "--emulated"], "--backend"),
        (["--backend", "ray", "--max-batch", "0"], "--max-batch"),
        (["--fleet-app", "qsplit-fleet1-edge"], "--fleet-app needs --backend ray"),
        (["--backend", "ray", "--fleet-app", "qsplit-fleet1-edge"], "--ray-address"),
    ],
)
def test_gateway_options_are_checked_before_anything_starts(args: list[str], field: str) -> None:
    command = ["agent", "--name", "edge", "--listen", "127.0.0.1:0", *args]
    result = CliRunner().invoke(app, command)
    assert isinstance(result.exception, InputError)
    assert field in str(result.exception)
