"""A plan served on an embedded Ray gives the whole model's outputs (fp32: exactly; quantized:
the planned quantized model's), batches concurrent callers without mixing their rows, and
refuses a cluster that lacks a node's resource."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import synthetic
from conftest import random_feeds, session
from qsplit.assets import sample_images_dir
from qsplit.errors import DependencyError, InputError, TransportError
from qsplit.infra import Infra, load_infra
from qsplit.model import analyze
from qsplit.quant import Quantizer, calibrate, image_feeds
from qsplit.runtime import build_deployment
from qsplit.serve import NodeServing, check_resources, connect_ray, import_ray
from served import THREE_TIER, three_tier_assignment, write_plan

pytest.importorskip("ray", reason="Ray is not installed (pip install 'qsplit[ray]')")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def ray_address(embedded_ray: Callable[[], str]) -> str:
    return embedded_ray()


@pytest.fixture(scope="module")
def infra() -> Infra:
    return load_infra(THREE_TIER)


@pytest.fixture(scope="module")
def yolo_plan(yolo11n_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    return write_plan(path, yolo11n_path, three_tier_assignment(yolo11n_path))


def test_fp32_plan_on_ray_equals_the_whole_model(
    ray_address: str, yolo_plan: Path, yolo11n_path: Path, infra: Infra
) -> None:
    model, _ = analyze(str(yolo11n_path))
    whole = session(model.proto)
    with connect_ray(yolo_plan, infra, model=yolo11n_path, graph_optimization="disabled") as served:
        nodes = {c.node for c in served.deployment.components}
        assert nodes == {"device", "edge", "cloud"}
        for seed in range(2):
            image = np.random.default_rng(seed).random((1, 3, 640, 640), dtype=np.float32)
            feeds = {"images": image}
            outputs = served.infer(feeds)
            for name, want in zip(
                served.deployment.model_outputs, whole.run(None, feeds), strict=True
            ):
                np.testing.assert_allclose(outputs[name], want, atol=1e-5, rtol=0)


def test_quantized_plan_on_ray_equals_the_planned_quantized_model(
    ray_address: str,
    yolo11n_path: Path,
    infra: Infra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model, graph = analyze(str(yolo11n_path))
    quantized = graph.block_names[2:12]  # int8 crosses device → edge
    plan = write_plan(
        tmp_path / "plan.json", yolo11n_path, three_tier_assignment(yolo11n_path), quantized
    )
    images = image_feeds(model, sample_images_dir())
    # The ranges the deployment computes from the same (bundled) images.
    whole = session(Quantizer(model, graph, calibrate(model, images)).quantize(quantized))
    with connect_ray(plan, infra, model=yolo11n_path, graph_optimization="disabled") as served:
        assert served.deployment.quantized == tuple(quantized)
        for feeds in images[:2]:
            outputs = served.infer(feeds)
            for name, want in zip(
                served.deployment.model_outputs, whole.run(None, feeds), strict=True
            ):
                np.testing.assert_allclose(outputs[name], want, atol=1e-5, rtol=0)


def test_batching_returns_each_caller_its_own_rows(
    ray_address: str, infra: Infra, tmp_path: Path
) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, graph = analyze(str(path))
    tiers = {"stem": "device", "body": "edge"}
    assignment = {b: tiers.get(b.split("/")[0], "cloud") for b in graph.block_names}
    deployment = build_deployment(path, assignment, infra, agents=False)
    whole = session(model.proto)
    requests = [random_feeds(model.proto, seed) for seed in range(8)]
    # A long wait lets the concurrent callers' requests meet in one batch.
    serving = NodeServing(max_batch_size=4, batch_wait_timeout_s=1.0)
    with connect_ray(deployment, infra, serving=serving, graph_optimization="disabled") as served:
        assert all(r.batches for r in served.replicas().values())
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(served.infer, requests))
        largest = {name: r.largest_batch for name, r in served.replicas().items()}
    for feeds, outputs in zip(requests, answers, strict=True):
        for name, want in zip(deployment.model_outputs, whole.run(None, feeds), strict=True):
            np.testing.assert_allclose(outputs[name], want, atol=1e-4, rtol=1e-4)
    assert max(largest.values()) > 1, largest


def test_a_missing_resource_is_named_with_the_fix(ray_address: str) -> None:
    with pytest.raises(InputError) as error:
        check_resources(ray_address, ["edge", "fog", "mist"])
    message = str(error.value)
    assert "--ray-address" in message and "'fog', 'mist'" in message and "'edge'" not in message
    assert "ray start --address" in message


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(DependencyError, match=r"qsplit\[ray\]"):
        import_ray()


def test_autoscaled_components_start_at_their_minimum(
    ray_address: str, infra: Infra, tmp_path: Path
) -> None:
    """With ``max_replicas`` Serve autoscales each shared component between ``replicas`` and
    it (``autoscaling_config``): every component starts at 1 replica and serves."""
    _, serve = import_ray()
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, graph = analyze(str(path))
    tiers = {"stem": "device", "body": "edge"}
    assignment = {b: tiers.get(b.split("/")[0], "cloud") for b in graph.block_names}
    deployment = build_deployment(path, assignment, infra, agents=False)
    feeds = random_feeds(model.proto, 0)
    serving = NodeServing(replicas=1, max_replicas=2)
    with connect_ray(deployment, infra, serving=serving, graph_optimization="disabled") as served:
        outputs = served.infer(feeds)
        ours = {
            name: app
            for name, app in serve.status().applications.items()
            if name.startswith(f"qsplit-{deployment.id}-")
        }
    assert len(ours) == 2, list(ours)  # the edge's component and the cloud's
    for app in ours.values():
        (status,) = app.deployments.values()
        assert sum(status.replica_states.values()) == 1, status.replica_states
    for name, want in zip(
        deployment.model_outputs, session(model.proto).run(None, feeds), strict=True
    ):
        np.testing.assert_allclose(outputs[name], want, atol=1e-4, rtol=1e-4)


def test_a_failing_shared_component_is_named_with_its_node(
    ray_address: str, infra: Infra, tmp_path: Path
) -> None:
    """The edge's component hands its response on to the cloud's, whose ONNX Runtime fails (an
    index out of bounds): the caller's error names the cloud's component and node, for
    ``infer`` and for each request of ``stream``."""
    path = synthetic.save(synthetic.failing_gather(), tmp_path / "failing.onnx")
    _, graph = analyze(str(path))
    assignment = {b: "edge" if b.startswith("/index") else "cloud" for b in graph.block_names}
    deployment = build_deployment(path, assignment, infra, agents=False)
    (cloud,) = [c.name for c in deployment.components if c.node == "cloud"]
    feeds = {"x": np.ones(16, np.float32)}  # every index 16, into one element
    with connect_ray(deployment, infra, graph_optimization="disabled") as served:
        with pytest.raises(TransportError) as failed:
            served.infer(feeds)
        results = list(served.stream([feeds, feeds], max_in_flight=2))
    assert str(failed.value).startswith(f"component {cloud!r} on node 'cloud' failed: ")
    assert "Gather" in str(failed.value)  # ORT's error, unwrapped from Ray's
    assert failed.value.peer == "cloud"
    for result in results:
        assert result.outputs is None and isinstance(result.error, TransportError)
        assert result.error.peer == "cloud" and result.record.error == str(result.error)


SECOND_DEVICE = """
import json, sys
import numpy as np
from qsplit.infra import load_infra
from qsplit.runtime import build_deployment
from qsplit.serve import connect_ray
path, infra_path, assignment, address = sys.argv[1:5]
infra = load_infra(infra_path)
deployment = build_deployment(path, json.loads(assignment), infra, agents=False)
feeds = {i.name: np.zeros(i.shape, i.dtype) for i in deployment.input_specs}
with connect_ray(deployment, infra, address=address, graph_optimization="disabled") as served:
    served.infer(feeds)
    print("ready", deployment.id, flush=True)
    sys.stdin.readline()  # the first device leaves meanwhile
    served.infer(feeds)
    print("still served", flush=True)
"""


def test_a_device_leaving_does_not_take_the_shared_applications_from_another(
    ray_address: str, infra: Infra, tmp_path: Path
) -> None:
    """Two devices (two Ray drivers) run the same plan: its applications are shared, and the
    first to leave does not delete them from under the second; the last one does."""
    import json
    import subprocess

    from ray import serve

    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    _, graph = analyze(str(path))
    tiers = {"stem": "device", "body": "edge"}
    assignment = {b: tiers.get(b.split("/")[0], "cloud") for b in graph.block_names}
    deployment = build_deployment(path, assignment, infra, agents=False)
    args = [str(path), str(THREE_TIER), json.dumps(assignment), ray_address]
    command = [sys.executable, "-c", SECOND_DEVICE, *args]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    with subprocess.Popen(command, **pipes) as other:  # type: ignore[call-overload]
        try:
            with connect_ray(deployment, infra, graph_optimization="disabled") as served:
                ready = other.stdout.readline().split()
                assert ready == ["ready", deployment.id]
                ours = {a for a in serve.status().applications if deployment.id in a}
                assert len(ours) == 2  # the edge's and the cloud's component, one each for both
                served.infer({i.name: np.zeros(i.shape, i.dtype) for i in deployment.input_specs})
            assert ours <= set(serve.status().applications)  # the other device still holds them
            other.stdin.write("go\n")
            other.stdin.flush()
            assert other.stdout.readline().strip() == "still served"
            assert other.wait(timeout=60) == 0
        finally:
            if other.poll() is None:
                other.kill()
    assert not ours & set(serve.status().applications)  # gone with their last device
