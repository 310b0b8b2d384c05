"""`qsplit demo --scenario adaptive`, shortened: a few requests per strategy while the uplinks
drop and recover and the cloud dies, on the real testbed."""

from __future__ import annotations

import json

import pytest

from qsplit.demo import AdaptiveConfig, run_adaptive_demo
from qsplit.profile import HostReference

SCHEDULE = """\
schema_version: 1
events:
  - {at: 2s, link: [device, edge], rate: 1MB/s}
  - {at: 2s, link: [device, cloud], rate: 1MB/s}
  - {at: 6s, link: [device, edge], rate: 10MB/s}
  - {at: 6s, link: [device, cloud], rate: 10MB/s}
  - {at: 9s, node: cloud, kill: true}
"""


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory, host: HostReference):
    root = tmp_path_factory.mktemp("adaptive")
    schedule = root / "schedule.yaml"
    schedule.write_text(SCHEDULE)
    config = AdaptiveConfig(
        out=root / "run",
        schedule=schedule,
        tail_s=6.0,
        cache=root / "cache",
        images_used=1,
        host=host,
    )
    return run_adaptive_demo(config)


@pytest.mark.slow
def test_the_run_json_and_figure_are_written_and_adaptive_loses_nothing(short_run) -> None:
    run = json.loads((short_run.run_dir / "adaptive.json").read_text())
    assert run["kind"] == "adaptive-demo" and run["schema_version"] == 1
    assert [t["strategy"] for t in run["timelines"]] == ["static", "table", "adaptive"]
    figure = short_run.run_dir / "report" / "img" / "adaptive-latency.png"
    assert figure.read_bytes()[:4] == b"\x89PNG"
    report = short_run.report.read_text()
    assert "img/adaptive-latency.png" in report and "| adaptive | kill cloud |" in report
    assert "| static | device→edge, device→cloud 1 MB/s |" in report
    for strategy, played in run["schedule"]["played"].items():
        assert [p["label"] for p in played][-1] == "kill cloud", strategy
    timelines = {t.strategy: t for t in short_run.timelines}
    adaptive = timelines["adaptive"]
    assert adaptive.points and not any(p.lost for p in adaptive.points)
    # Requests went on after the kill, on a plan without the cloud.
    after = [p for p in adaptive.points if p.at_s > 9.5]
    assert after and all("cloud" not in p.plan for p in after)
    # The static plan offloads to the cloud, so it loses what it sends after the kill.
    static = timelines["static"]
    assert "cloud" in static.points[0].plan
    assert any(p.lost for p in static.points if p.at_s >= 9.0)
    rows = {(r.strategy, r.phase): r for r in short_run.rows}
    assert rows[("adaptive", "kill cloud")].lost == 0


def test_an_unknown_scenario_or_strategy_is_refused(tmp_path) -> None:
    from typer.testing import CliRunner

    from qsplit.cli import app
    from qsplit.errors import InputError

    result = CliRunner().invoke(app, ["demo", "--scenario", "chaos", "--out", str(tmp_path)])
    assert isinstance(result.exception, InputError)  # the entry point prints it, exit code 2
    assert (
        str(result.exception)
        == "--scenario: unknown scenario 'chaos'. Fix: use default or adaptive"
    )
    with pytest.raises(InputError, match="choose among static, table, adaptive"):
        run_adaptive_demo(AdaptiveConfig(out=tmp_path, strategies=("oracle",)))
