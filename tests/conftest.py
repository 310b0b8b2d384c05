"""Shared fixtures: synthetic ONNX models on disk, the bundled YOLO11n, and ORT helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import synthetic
from qsplit.profile import HostReference

WAKE_UP_SLACK_S = 0.015
"""How much later than its link's nominal time an emulated transfer may be measured. On a busy
2-core host each thread wake-up on the way (link proxy, agent, client) can take milliseconds; a
transfer that bypassed the emulator still fails the lower bound, one delayed twice the upper."""


@pytest.fixture(scope="session")
def host_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This host measured once per test session and saved as ``qsplit testbed calibrate --out``
    saves it. The tests that start a testbed are given it instead of measuring the host again
    (10-25 s each); tests/testbed/test_testbed.py keeps tests of the measuring path."""
    from qsplit.profile import measure_host, save_host_reference
    from qsplit.testbed import AGENT_STATISTIC

    path = tmp_path_factory.mktemp("host") / "host.json"
    save_host_reference(measure_host(AGENT_STATISTIC, whole=True), path)
    return path


@pytest.fixture(scope="session")
def host(host_file: Path) -> HostReference:
    """The session's host reference (:func:`host_file`), as ``Testbed.up`` takes it."""
    from qsplit.testbed import load_host_file

    return load_host_file(host_file)[0]


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """An ORT session with graph optimisations off, so that a component runs exactly the same
    kernels on the same data as the whole model does and outputs can be compared tightly."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def two_node_infra(*, device: str = "1s", edge: str = "500ms", latency: str = "20ms") -> str:
    """Infra YAML of a device and an edge (8 MB/s up, 40 MB/s down) with these reference times
    and link latency: the testbed and adaptation tests' scenario. The default speeds are ones
    any plausible CI host can emulate (YOLO11n there: ~100-300 ms)."""
    return f"""\
schema_version: 1
device: device
nodes:
  - {{name: device, role: device, compute_power_w: 3, transmit_power_w: 3.5, memory_bytes: 4GiB,
     reference_time: {device}}}
  - {{name: edge, role: edge, compute_power_w: 6, transmit_power_w: 2.2, memory_bytes: 16GiB,
     reference_time: {edge}}}
links:
  - {{from: device, to: edge, bandwidth: 8MB/s, latency: {latency}}}
  - {{from: edge, to: device, bandwidth: 40MB/s, latency: {latency}}}
"""


def quantizable_branchy(folder: Path):
    """The branchy synthetic CNN at node granularity, three random feeds, and a quantizer
    calibrated on them: what the noise-study tests sample from."""
    from qsplit.model import analyze
    from qsplit.quant import Quantizer, calibrate

    path = synthetic.save(synthetic.branchy_cnn(), folder / "b.onnx")
    model, graph = analyze(str(path), granularity="node")
    feeds = [random_feeds(model.proto, seed) for seed in range(3)]
    return model, graph, Quantizer(model, graph, calibrate(model, feeds)), feeds


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder with the synthetic models saved as .onnx files."""
    synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    synthetic.save(synthetic.branchy_cnn(named=False), tmp_path / "branchy_anon.onnx")
    synthetic.save(synthetic.attention(), tmp_path / "attention.onnx")
    synthetic.save(synthetic.attention(dynamic_batch=True), tmp_path / "attention_dyn.onnx")
    return tmp_path


@pytest.fixture(scope="session")
def yolo11n_path() -> Path:
    from qsplit.assets import bundled_model_path

    path = bundled_model_path("yolo11n")
    assert path.exists(), "the bundled YOLO11n is part of the repository"
    return path


RAY_RESOURCES = ("device", "edge", "cloud")
"""What the session's embedded Ray offers: the three-tier example's nodes, which are also the
fleet examples' shared nodes, and ``device``, the resource fleet class actors are placed by."""


@pytest.fixture(scope="session")
def embedded_ray() -> Iterator[Callable[[], str]]:
    """One embedded Ray for the session's Ray tests (a start takes ~30 s on a busy 2-core host),
    which qsplit's sessions attach to and leave running. Call it for Ray's address: it starts
    Ray when none is up (``tests/serve/test_cluster.py`` stops it to join its own cluster).
    Serve and Ray are stopped at the end of the session."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'qsplit[ray]')")
    import ray

    from qsplit.serve import start_embedded

    def address() -> str:
        if not ray.is_initialized():
            start_embedded(RAY_RESOURCES)
        return str(ray.get_runtime_context().gcs_address)

    yield address
    stop_ray()


def stop_ray() -> None:
    """Stop this process's Ray, if up: the session's shared one at its end, or before a test
    joins a cluster of its own (the next test that asks for ``embedded_ray`` starts it again)."""
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()
