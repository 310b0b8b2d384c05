"""A fleet plan served for real devices (``serve_fleet``): its shared nodes run on Ray at their
own speed; a device that runs Ray calls them through ``connect_fleet``, a device that keeps the
light agent through gateway agents (``--fleet-app``); both get the whole model's outputs, and
their requests meet in the same node components."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import qsplit
import served  # noqa: F401  (puts tests/runtime on the path, for the agent helpers)
from agents import infra_for, running_agents
from conftest import session
from qsplit.errors import InputError
from qsplit.fleet import (
    ClassDeployment,
    FleetDeployment,
    HostedComponent,
    SharedDeployment,
    load_fleet,
)
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect
from qsplit.serve import connect_fleet, fleet_applications, serve_fleet

pytest.importorskip("ray", reason="Ray is not installed (pip install 'qsplit[ray]')")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

EXAMPLE = Path(qsplit.__file__).parent / "examples" / "fleet-testbed.yaml"


def plan(blocks: tuple[str, ...]) -> FleetDeployment:
    """Cameras (Ray): blocks 0-9 on the edge, the rest on the cloud; phones (the light agent):
    0-1 on the phone, 2-9 on the edge, the rest on the cloud: one cloud component for both."""
    cameras = {b: "edge" if i < 10 else "cloud" for i, b in enumerate(blocks)}
    phones = {b: "phones" if i < 2 else n for i, (b, n) in enumerate(cameras.items())}
    return FleetDeployment(
        (
            ClassDeployment("cameras", 1, 0.1, cameras),
            ClassDeployment("phones", 1, 0.1, phones, "agent"),
        ),
        (
            SharedDeployment(
                "edge",
                1,
                1,
                (
                    HostedComponent(blocks[:10], ("cameras",), 0.1),
                    HostedComponent(blocks[2:10], ("phones",), 0.1),
                ),
            ),
            SharedDeployment(
                "cloud", 2, 2, (HostedComponent(blocks[10:], ("cameras", "phones"), 0.2),)
            ),
        ),
    )


def test_ray_and_agent_devices_share_a_served_fleets_nodes(
    embedded_ray: Callable[[], str], yolo11n_path: Path
) -> None:
    from ray import serve

    address = embedded_ray()
    fleet = load_fleet(EXAMPLE)
    model, graph = analyze(str(yolo11n_path))
    deployment = plan(graph.block_names)
    feeds = {"images": np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)}
    want = session(model.proto).run(None, feeds)
    options = {"model": yolo11n_path, "graph_optimization": "disabled"}
    with serve_fleet(deployment, fleet, **options) as nodes:
        assert nodes.applications == fleet_applications(deployment)
        with pytest.raises(InputError, match="keeps the light agent") as refused:
            connect_fleet(deployment, fleet, "phones", **options)
        assert refused.value.field == "device_class"
        # A device that runs Ray.
        with connect_fleet(deployment, fleet, "cameras", **options) as camera:
            got = camera.infer(feeds)

        # A device that keeps the light agent, through a gateway per shared node.
        def gateway(name: str) -> tuple[str, ...]:
            if name == "phones":
                return ()
            return (
                "--backend",
                "ray",
                "--ray-address",
                address,
                "--fleet-app",
                nodes.applications[name],
            )

        with running_agents("phones", "edge", "cloud", own_args=gateway) as agents:
            infra = infra_for(agents, device="phones")
            phones = dict(deployment.classes[1].assignment)
            built = build_deployment(yolo11n_path, phones, infra)
            with connect(built, infra, graph_optimization="disabled") as phone:
                got_phone = phone.infer(feeds)
        cloud = serve.get_deployment_handle("cloud", nodes.applications["cloud"])
        batches = cloud.batches.remote().result()
    for outputs in (got, got_phone):
        for name, w in zip(built.model_outputs, want, strict=True):
            np.testing.assert_allclose(outputs[name], w, atol=1e-4, rtol=1e-4)
    # One request of each class, both in the cloud's one component, at the node's own speed.
    assert len(batches) == 2 and all(b["size"] == 1 for b in batches)
    assert not set(nodes.applications.values()) & set(serve.status().applications)
    with pytest.raises(InputError, match="not served on this Ray") as missing:
        connect_fleet(deployment, fleet, "cameras", **options)
    assert missing.value.field == "address"


def test_the_fleet_serve_and_connect_commands(
    embedded_ray: Callable[[], str], yolo11n_path: Path, tmp_path: Path
) -> None:
    """`qsplit fleet serve` deploys a planned fleet's nodes and says how each class connects;
    `qsplit fleet connect` sends a Ray class's requests to them, and refuses what it cannot do
    naming the option."""
    from typer.testing import CliRunner

    from qsplit.cli import app

    address = embedded_ray()
    plan_file = tmp_path / "fleet-plan.json"
    runner = CliRunner()
    planned = runner.invoke(app, ["fleet", "plan", str(EXAMPLE), "--out", str(plan_file)])
    assert planned.exit_code == 0, planned.output
    common = [str(plan_file), str(EXAMPLE), "--model", str(yolo11n_path)]
    serving = runner.invoke(
        app, ["fleet", "serve", *common, "--ray-address", address, "--duration", "0"]
    )
    assert serving.exit_code == 0, serving.output
    assert "--fleet-app qsplit-fleet-" in serving.output  # the phones keep the light agent
    assert "--class cameras --ray-address" in serving.output
    unknown = runner.invoke(app, ["fleet", "connect", *common, "--class", "drones"])
    assert isinstance(unknown.exception, InputError) and unknown.exception.field == "--class"
    agentless = runner.invoke(app, ["fleet", "connect", *common, "--class", "phones"])
    assert isinstance(agentless.exception, InputError)
    assert agentless.exception.field == "--device-infra"
    # Served again (in this process, as a cluster would keep them), a camera connects.
    from qsplit.fleet import load_fleet, load_fleet_plan

    with serve_fleet(load_fleet_plan(plan_file), load_fleet(EXAMPLE), model=yolo11n_path):
        camera = runner.invoke(
            app, ["fleet", "connect", *common, "--class", "cameras", "--random", "2"]
        )
    assert camera.exit_code == 0, camera.output
    assert "cameras (ray) on the served fleet" in camera.output
