"""One profiling path: shipped profiles scaled to a node's speed, measured ones otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import synthetic
from qsplit.assets import bundled_model_path, bundled_profile_paths
from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.profile import (
    CODEC_OPERATIONS,
    BlockTiming,
    ComputeProfile,
    Overhead,
    profile_node,
    scale_profile,
    shipped_profile,
)
from qsplit.profile import _node as node_module

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # ORT's quantization tooling


@pytest.fixture(scope="module")
def yolo():
    return analyze(str(bundled_model_path("yolo11n")))


def test_the_bundled_yolo11n_ships_a_profile_of_every_block(yolo) -> None:
    _, graph = yolo
    [path] = bundled_profile_paths()
    shipped = ComputeProfile.load(str(path))
    assert shipped.model_sha256 == graph.model.sha256
    assert list(shipped.blocks) == list(graph.block_names)
    host_s = shipped.settings["host_reference_s"]
    assert host_s == pytest.approx(sum(t.fp32_s for t in shipped.blocks.values()))
    assert shipped.settings["statistic"] == "min"
    assert any(t.int8_s is not None for t in shipped.blocks.values())


def test_an_emulated_node_gets_the_shipped_profile_at_its_own_speed(yolo, monkeypatch) -> None:
    """The reference model's profile sums to the node's reference time, and a node twice as
    slow is that profile doubled, int8 included: nothing depends on the host, which is not
    timed at all."""
    model, graph = yolo

    def no_timing(*_: object, **__: object) -> None:
        raise AssertionError("a node with a shipped profile must not be timed")

    monkeypatch.setattr(node_module, "profile_compute", no_timing)
    edge = profile_node(model, graph, node="edge", reference_time_s=0.425, padding_factor=3.0)
    device = profile_node(model, graph, node="device", reference_time_s=0.85)
    assert edge.node == "edge" and edge.model_sha256 == graph.model.sha256
    assert sum(t.fp32_s for t in edge.blocks.values()) == pytest.approx(0.425)
    for name, t in edge.blocks.items():
        d = device.blocks[name]
        assert d.fp32_s == pytest.approx(2 * t.fp32_s)
        assert (d.int8_s is None) == (t.int8_s is None)
        if t.int8_s is not None:
            assert d.int8_s == pytest.approx(2 * t.int8_s)
    assert edge.settings["reference_time_s"] == 0.425 and "padding_factor" not in edge.settings
    assert "shipped profile" in edge.settings["source"]
    assert shipped_profile(graph, "edge", 0.425) == edge
    # Codec times are shipped too, and scale with the node like its blocks.
    assert edge.codec is not None and device.codec is not None
    assert device.codec == edge.codec.scaled(2.0) or all(
        device.codec.encode[op].per_byte_s == pytest.approx(2 * c.per_byte_s)
        for op, c in edge.codec.encode.items()
    )


def test_a_model_without_a_shipped_profile_is_timed_here(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, graph = analyze(str(path))
    assert shipped_profile(graph, "edge", 0.425) is None
    profile = profile_node(
        model,
        graph,
        node="edge",
        reference_time_s=0.425,
        padding_factor=2.0,
        statistic="min",
        warmup=0,
        repetitions=2,
        int8=False,
    )
    assert set(profile.blocks) == set(graph.block_names)
    assert profile.settings["padding_factor"] == 2.0 and profile.settings["statistic"] == "min"
    assert profile.codec is not None
    assert all(profile.codec.supports(op) for op in CODEC_OPERATIONS)


def test_shipped_can_be_turned_off_to_time_the_reference_model(yolo, monkeypatch) -> None:
    model, graph = yolo
    calls = []
    monkeypatch.setattr(node_module, "profile_compute", lambda *a, **k: calls.append(k))
    profile_node(model, graph, node="edge", reference_time_s=0.425, shipped=False, codec=False)
    assert calls and calls[0]["node"] == "edge"


def test_a_profile_without_its_hosts_reference_time_cannot_be_scaled(yolo) -> None:
    [path] = bundled_profile_paths()
    shipped = ComputeProfile.load(str(path))
    settings = {k: v for k, v in shipped.settings.items() if k != "host_reference_s"}
    bare = ComputeProfile("x", shipped.model_sha256, shipped.granularity, shipped.blocks, settings)
    with pytest.raises(InputError, match=r"settings\.host_reference_s"):
        scale_profile(bare, "edge", 0.425, source="x.json")
    with pytest.raises(InputError, match="not positive"):
        scale_profile(shipped, "edge", float("nan"), source=path.name)


def test_a_profiles_overhead_is_saved_and_older_files_load_without_it(tmp_path: Path) -> None:
    timing = {"b0": BlockTiming(fp32_s=0.001)}
    fixed = Overhead(request_s=0.001, message_s=0.0008, local_bandwidth_bytes_per_s=1.5e9)
    for overhead in (fixed, Overhead(0.001, 0.0008), None):
        path = tmp_path / "p.json"
        ComputeProfile("dev", "0" * 64, "block", timing, overhead=overhead).save(str(path))
        assert ComputeProfile.load(str(path)).overhead == overhead
    assert "overhead" not in json.loads(path.read_text())  # none measured: the old format
    assert Overhead(0.0, 0.001, 1e6).local_message_s(2e6) == pytest.approx(2.001)
