"""`qsplit demo` end to end on the testbed, shortened: YOLO11n on device + edge.

The nodes are device-edge.yaml's, described by absolute reference times (1000 ms, 425 ms) that
any plausible CI host can emulate, so the plans, and every assertion here, are the same on a
fast host and on a slow one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qsplit.demo import DemoConfig, ScenarioSpec, _pipeline, run_demo
from qsplit.demo._cache import Cache
from qsplit.profile import ComputeProfile, HostReference
from qsplit.quant import _study
from qsplit.report import build_report

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "qsplit" / "examples"


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory, host: HostReference) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("demo")
    config = DemoConfig(
        out=root / "run",
        testbed_infra=EXAMPLES / "device-edge.yaml",
        scenarios=(ScenarioSpec("device+edge", EXAMPLES / "device-edge.yaml"),),
        cache=root / "cache",
        w_latency=(1.0,),
        noise_fractions=(0.0, 1.0),
        requests=2,
        noise_samples=16,
        noise_top_k=4,
        link_tensors=1,  # 4 blocks + fp16/int8 of 1 tensor: 6 variables for 16 samples
        profile_repetitions=5,
        host=host,
    )
    with pytest.MonkeyPatch.context() as patch:
        for module in (_study, _pipeline):
            patch.setattr(module, "calibrate", _recording(module.calibrate))
        index = run_demo(config)
    return config.out, index


CALIBRATIONS: list[bool] = []
"""Per calibration the demo asked for: whether its ranges were already on disk."""


def _recording(calibrate: Callable[..., Any]) -> Callable[..., Any]:
    def recorded(model: Any, feeds: Any, cache: Any = None, **options: Any) -> Any:
        CALIBRATIONS.append(cache is not None and Path(cache).is_file())
        return calibrate(model, feeds, cache, **options)

    return recorded


@pytest.mark.slow
def test_every_configuration_ran_and_fp32_outputs_equal_the_whole_model(short_run) -> None:
    run_dir, index = short_run
    kinds = {e.kind for e in index.entries}
    assert "plan" in kinds
    # Each baseline ran: under its own label, or as a plan that chose the same configuration
    # (configurations are run once, under the first label found; a plan may be device-only).
    ran = {(frozenset(e.assignment.values()), e.quantized) for e in index.entries}
    assert {(frozenset({"device"}), ()), (frozenset({"edge"}), ())} <= ran
    for entry in index.entries:
        assert entry.error is None and entry.measured is not None, entry.error
        assert entry.measured.requests == 2 and entry.measured.failed == 0
        assert (run_dir / entry.run).is_file()
        if not entry.quantized:
            assert entry.measured.max_abs_diff is not None
            assert entry.measured.max_abs_diff <= 1e-4
            assert entry.measured.noise is None
        else:
            assert entry.measured.noise is not None and entry.measured.noise > 0


@pytest.mark.slow
def test_the_testbed_ran_each_node_at_its_absolute_speed(short_run) -> None:
    _, index = short_run
    calibration = index.settings["testbed"]
    host_ms = calibration["host_reference_ms"]
    assert "sum of its 34 blocks" in calibration["host_reference_method"]
    # The headroom check's whole runs were timed, and the run says it was not dilated.
    assert calibration["host_whole_run_ms"] > 0 and index.settings["dilation"] == 1.0
    for node, reference_ms in (("device", 1000.0), ("edge", 425.0)):
        factor = calibration["padding_factors"][node]
        assert factor == pytest.approx(max(1.0, reference_ms / host_ms), rel=1e-3)


@pytest.mark.slow
def test_plans_use_the_shipped_profile_at_each_nodes_speed(short_run) -> None:
    """Nothing of the model is timed on this host for the plans: each node's profile is the
    shipped YOLO11n profile scaled to its reference time, so plans cannot depend on the host."""
    run_dir, index = short_run
    for node, reference_s in (("device", 1.0), ("edge", 0.425)):
        profile = ComputeProfile.load(str(run_dir / index.profiles[node]))
        assert profile.settings["source"].startswith("shipped profile yolo11n.json")
        assert sum(t.fp32_s for t in profile.blocks.values()) == pytest.approx(reference_s)


@pytest.mark.slow
def test_the_device_profile_carries_the_requesters_fixed_costs(short_run) -> None:
    """Measured live with null requests to the device's agent (not cached like the block
    times); only the requester's node has them."""
    run_dir, index = short_run
    device = ComputeProfile.load(str(run_dir / index.profiles["device"]))
    assert device.overhead is not None
    assert device.overhead.message_s > 0
    assert ComputeProfile.load(str(run_dir / index.profiles["edge"])).overhead is None


@pytest.mark.slow
def test_measured_noise_is_close_to_the_noise_model(short_run) -> None:
    """4 candidate blocks, 16 samples: every mask was sampled, so the prediction is the fit at
    a measured point and the deployed split must reproduce that measurement."""
    run_dir, index = short_run
    assert any(e.quantized for e in index.entries)
    validation = build_report(run_dir).validation
    assert validation.noise.count >= 1
    assert validation.noise.mape_pct <= 15.0, validation.noise


@pytest.mark.slow
def test_measured_latency_is_close_to_the_prediction(short_run) -> None:
    run_dir, _ = short_run
    validation = build_report(run_dir).validation
    # The target is 10 % on a quiet machine; CI shares its cores with the test session.
    assert validation.latency.mape_pct <= 25.0, validation.latency


def test_the_model_was_calibrated_once(short_run) -> None:
    """The noise study (fitted: the cache was empty) and the compression table's int8 ranges
    need the same calibration; the second reads what the first wrote."""
    run_dir, _ = short_run
    assert CALIBRATIONS == [False, True]
    assert (run_dir / "profiles" / "calibration.json").is_file()


@pytest.mark.slow
def test_links_were_measured_through_the_emulators(short_run) -> None:
    run_dir, index = short_run
    links = json.loads((run_dir / index.links).read_text())["links"]
    by_pair = {(m["from"], m["to"]): m for m in links}
    assert set(by_pair) == {("device", "edge"), ("edge", "device")}
    assert abs(by_pair[("device", "edge")]["latency_s"] - 0.005) <= 1e-3


@pytest.mark.slow
def test_the_testbed_is_gone_afterwards(short_run) -> None:
    run_dir, _ = short_run
    assert not (run_dir / "testbed" / "testbed.json").exists()
    logs = sorted((run_dir / "testbed").glob("*.log"))
    assert [p.stem for p in logs] == ["device", "edge", "supervisor"]
    for pid_dir in Path("/proc").iterdir():
        if pid_dir.name.isdigit():
            try:
                command = (pid_dir / "cmdline").read_bytes()
            except OSError:
                continue
            assert str(run_dir / "testbed").encode() not in command


@pytest.mark.slow
def test_report_is_written(short_run) -> None:
    run_dir, _ = short_run
    report = build_report(run_dir)
    assert report.markdown.is_file()
    assert (run_dir / "report" / "img" / "accuracy-latency.png").is_file()


def test_cache_makes_each_result_once_and_never_keeps_a_partial_one(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    calls = []

    def make(folder: Path) -> None:
        calls.append(folder)
        (folder / "result.json").write_text("{}")

    folder, hit = cache.fetch("profiles", {"node": "edge"}, make)
    assert not hit and (folder / "result.json").is_file()
    assert cache.path("profiles", {"node": "edge"}) != cache.path("noise", {"node": "edge"})
    assert cache.fetch("profiles", {"node": "edge"}, make) == (folder, True)
    assert len(calls) == 1
    assert cache.fetch("profiles", {"node": "device"}, make)[1] is False

    def broken(folder: Path) -> None:
        (folder / "half.json").write_text("{")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.fetch("noise", {"samples": 3}, broken)
    assert not cache.path("noise", {"samples": 3}).exists()
