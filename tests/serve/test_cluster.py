"""A two-node Ray cluster on this machine — a head offering ``edge`` and a second node offering
``cloud``, each started with ``ray start`` — runs YOLO11n's three-tier plan: every replica runs
on the node offering its node's resource, and the outputs are the whole model's. The CLI joins
it with ``--ray-address`` and refuses a plan whose node the cluster does not offer."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import session, stop_ray
from qsplit.infra import Infra, load_infra
from qsplit.model import analyze
from qsplit.serve import connect_ray
from served import THREE_TIER, three_tier_assignment, write_plan

pytest.importorskip("ray", reason="Ray is not installed (pip install 'qsplit[ray]')")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SRC = Path(__file__).parents[2] / "src"
ENV = {
    **os.environ,
    # The cluster's workers import qsplit from this tree.
    "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    # A loopback test cluster: no token (Ray 2.60's head made one that its second node and
    # the driver did not present).
    "RAY_AUTH_MODE": "disabled",
}


def _ray(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ray"), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


START_ATTEMPTS = 3
"""A loaded 2-core host sometimes times a node's start-up out (GCS "Deadline Exceeded"); the
cluster is then stopped and started again."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """``ray start --head`` (edge) and a second ``ray start`` (cloud) on this machine, in their
    own temp dir; yields the head's address and always stops both."""
    stop_ray()  # the session's embedded Ray, if an earlier test started it: join this one
    # Ray's socket paths live under the temp dir and must stay short.
    temp = tempfile.mkdtemp(prefix="qsray-", dir="/tmp")
    auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = ENV["RAY_AUTH_MODE"]  # this process joins it as the driver
    try:
        failures = []
        for _ in range(START_ATTEMPTS):
            address, failure = _start_cluster(temp)
            if failure is None:
                break
            failures.append(failure)
            _stop_cluster(temp)
        else:
            pytest.fail("the cluster did not start:\n" + "\n".join(failures))
        yield address
    finally:
        _stop_cluster(temp)
        shutil.rmtree(temp, ignore_errors=True)
        if auth is None:
            del os.environ["RAY_AUTH_MODE"]
        else:
            os.environ["RAY_AUTH_MODE"] = auth


def _stop_cluster(temp: str) -> None:
    """Kill this cluster's processes: those whose command line or open files name its temp
    dir (Ray's agents rename themselves, ``ray::DashboardAgent``, but log into the session
    folder there). Not ``ray stop --force``, which kills every Ray process on the host, other
    sessions' and benchmarks' included."""
    deadline = time.monotonic() + 30
    while (pids := _processes_using(temp)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _processes_using(folder: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            named = folder.encode() in (entry / "cmdline").read_bytes()
            if not named:
                named = any(os.readlink(fd).startswith(folder) for fd in (entry / "fd").iterdir())
        except OSError:
            continue
        if named:
            pids.append(int(entry.name))
    return pids


def _start_cluster(temp: str) -> tuple[str, str | None]:
    """Start the head and the second node; the head's address, and what failed if anything."""
    address = f"127.0.0.1:{_free_port()}"
    common = ("--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats")

    def agent_ports() -> tuple[str, ...]:
        # A raylet waits 30 s at most for its agents to write the ports they chose, which a
        # loaded host's slow Python imports overran; these it is given. (Ray 2.60 still waits
        # for the dashboard agent's listen port: the raylet is not told it.)
        names = ("runtime-env-agent", "metrics-export", "dashboard-agent-grpc")
        return tuple(f"--{name}-port={_free_port()}" for name in names)

    head = _ray(
        "start",
        "--head",
        f"--port={address.split(':')[1]}",
        f"--temp-dir={temp}",
        "--include-dashboard=false",
        "--resources",
        json.dumps({"edge": 1}),
        *common,
        *agent_ports(),
    )
    if head.returncode != 0:
        return address, head.stderr[-2000:]
    second = _ray(
        "start",
        f"--address={address}",
        "--resources",
        json.dumps({"cloud": 1}),
        *common,
        *agent_ports(),
    )
    return address, None if second.returncode == 0 else second.stderr[-2000:]


@pytest.fixture(scope="module")
def infra() -> Infra:
    return load_infra(THREE_TIER)


@pytest.fixture(scope="module")
def yolo_plan(yolo11n_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    return write_plan(path, yolo11n_path, three_tier_assignment(yolo11n_path))


def test_replicas_run_on_the_nodes_offering_their_resource(
    cluster: str, yolo_plan: Path, yolo11n_path: Path, infra: Infra
) -> None:
    import ray

    model, _ = analyze(str(yolo11n_path))
    feeds = {"images": np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)}
    with connect_ray(
        yolo_plan, infra, model=yolo11n_path, address=cluster, graph_optimization="disabled"
    ) as served:
        outputs = served.infer(feeds)
        placed = {name: report.node_id for name, report in served.replicas().items()}
        offering = {
            resource: node["NodeID"]
            for node in ray.nodes()
            if node["Alive"]
            for resource in ("edge", "cloud")
            if node["Resources"].get(resource)
        }
        shared = [c for c in served.deployment.components if c.node != "device"]
    assert offering["edge"] != offering["cloud"]
    assert {c.node for c in shared} == {"edge", "cloud"}
    for component in shared:
        assert placed[component.name] == offering[component.node], component.name
    for name, want in zip(outputs, session(model.proto).run(None, feeds), strict=True):
        np.testing.assert_allclose(outputs[name], want, atol=1e-5, rtol=0)


def test_the_cli_joins_the_cluster_and_names_a_missing_resource(
    cluster: str, yolo_plan: Path, yolo11n_path: Path, tmp_path: Path
) -> None:
    common = ["--model", str(yolo11n_path), "--backend", "ray", "--ray-address", cluster]
    ran = _qsplit(
        "run",
        str(yolo_plan),
        "--infra",
        str(THREE_TIER),
        *common,
        "--random",
        "2",
        "--out",
        str(tmp_path / "r.json"),
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2/2 requests ok" in ran.stdout
    assert json.loads((tmp_path / "r.json").read_text())["backend"] == "ray"
    # The same plan with its cloud called "fog", which no node of the cluster offers.
    fog_infra = tmp_path / "fog.yaml"
    fog_infra.write_text(
        THREE_TIER.read_text().replace("cloud", "fog").replace("role: fog", "role: cloud")
    )
    assignment = {
        b: n.replace("cloud", "fog") for b, n in three_tier_assignment(yolo11n_path).items()
    }
    fog_plan = write_plan(tmp_path / "fog.json", yolo11n_path, assignment)
    refused = _qsplit("run", str(fog_plan), "--infra", str(fog_infra), *common, "--random", "1")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--ray-address" in refused.stderr and "'fog'" in refused.stderr
    assert "ray start --address" in refused.stderr


def _qsplit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qsplit", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
