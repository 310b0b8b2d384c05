"""``run_fleet_demo``'s orchestration without Ray: a stand-in runner measures each deployment it
is handed, and the demo must plan, run every configuration once, predict each from the
deployment that ran, and write the results file and figures."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

import qsplit
from qsplit.demo import FLEET_DEMO_FILE, FleetDemoConfig, FleetDemoOutcome, run_fleet_demo
from qsplit.demo._fleet_predict import call_overhead
from qsplit.fleet import ClassOutcome, FleetDeployment, Outcome
from qsplit.serve import FleetMeasurement, FleetRequest

EXAMPLE = Path(qsplit.__file__).parent / "examples" / "fleet.yaml"


class StandIn:
    """Measures a deployment as: each device sends two requests, each taking 0.1 s per node its
    plan uses; shared nodes busy in proportion to the blocks they host."""

    def __init__(self) -> None:
        self.ran: dict[str, FleetDeployment] = {}
        self.devices: dict[str, Mapping[str, int] | None] = {}

    def __call__(
        self, deployment: FleetDeployment, label: str, devices: Mapping[str, int] | None
    ) -> FleetMeasurement:
        self.ran[label] = deployment
        self.devices[label] = devices
        requests = []
        for c in deployment.classes:
            latency = 0.1 * len(set(c.assignment.values()))
            for device in range(c.count if devices is None else devices[c.name]):
                for index in range(2):
                    sent = 1.0 + index
                    requests.append(
                        FleetRequest(c.name, device, index, sent, sent + latency, None, {})
                    )
        nodes = [s.node for s in deployment.shared]
        return FleetMeasurement(
            label=label,
            duration_s=10.0,
            requests=tuple(requests),
            busy_s={
                s.node: 0.01 * sum(len(h.blocks) for h in s.components) for s in deployment.shared
            },
            replicas={s.node: s.replicas for s in deployment.shared},
            batch_sizes={k: {1: 3} for k in nodes},
            overruns={},
            runs={k: 3 for k in nodes},
            completions=len(requests) - 1,  # one still out when the window closed
        )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[FleetDemoOutcome, StandIn]:
    runner = StandIn()
    config = FleetDemoConfig(out=tmp_path_factory.mktemp("fleet"), infra=EXAMPLE, devices=6)
    return run_fleet_demo(config, runner=runner), runner


def test_every_configuration_runs_once_with_the_planned_devices(demo) -> None:
    outcome, runner = demo
    labels = [r.label for r in outcome.results]
    assert list(runner.ran) == ["calibration", *labels] and labels[0] == "fleet"
    assert runner.ran["calibration"] == runner.ran["fleet"]
    assert runner.devices["calibration"] == {
        c.name: max(1, c.count // 4) for c in outcome.plan.fleet.classes
    }
    assert all(runner.devices[label] is None for label in labels)
    assert {"alone", "cloud-only", "device-only"} <= set(labels)
    assert sum(c.count for c in runner.ran["fleet"].classes) == 6
    device_only = runner.ran["device-only"]
    assert all(set(c.assignment.values()) == {c.name} for c in device_only.classes)
    if "fleet-batch1" in labels:
        assert all(s.batch_size == 1 for s in runner.ran["fleet-batch1"].shared)


def test_each_configuration_is_predicted_from_what_ran(demo) -> None:
    outcome, _ = demo
    device_only = outcome.result("device-only")
    assert all(n.utilisation.predicted == 0 for n in device_only.nodes)
    assert outcome.uncorrected["fleet"].latency_p95_s == pytest.approx(
        outcome.plan.outcome.latency_p95_s, rel=1e-6
    )
    # the calibration's fixed cost per shared call is carried by every prediction that calls
    # Calibrated per device runtime: the fleet file's cameras keep the light agent.
    assert set(outcome.call_overhead_s) <= {"ray", "agent"}
    assert {c.name: c.runtime for c in outcome.plan.deployment().classes}["cameras"] == "agent"
    assert all(s >= 0 for s in outcome.call_overhead_s.values())
    assert device_only.p50_s.predicted == pytest.approx(
        outcome.uncorrected["device-only"].latency_p50_s
    )
    assert [v.against for v in outcome.versus] == [r.label for r in outcome.results[1:]]


def test_results_file_and_figures(demo) -> None:
    outcome, runner = demo
    document = json.loads((outcome.run_dir / FLEET_DEMO_FILE).read_text())
    assert (document["kind"], document["schema_version"]) == ("fleet-demo", 1)
    assert sum(document["devices"].values()) == 6
    assert [c["label"] for c in document["configurations"]] == list(runner.ran)[1:]
    assert document["call_overhead_s"] == outcome.call_overhead_s
    fleet = document["configurations"][0]
    assert len(fleet["requests"]) == 12 and fleet["failed"] == 0
    assert fleet["throughput_hz"] == pytest.approx(11 / 10.0)
    assert fleet["drained_hz"] == pytest.approx(12 / 10.0)
    assert set(fleet["plans"]) == set(document["devices"])
    assert (outcome.run_dir / document["plan_file"]).exists()
    assert document["figures"] and all((outcome.run_dir / f).exists() for f in document["figures"])
    assert "load_average" in document["machine"]


def test_call_overhead_is_the_excess_per_call_weighted_by_requests() -> None:
    predicted = Outcome(
        tuple(ClassOutcome(n, "p", 0.1, 1.0, 1.0, 1.2, 1.0, 0.5) for n in ("a", "b", "c")),
        (),
        1.0,
        1.0,
        1.2,
        1.0,
        1.0,
        2.0,
        True,
    )

    def requests(name: str, latency: float, count: int) -> list[FleetRequest]:
        return [FleetRequest(name, 0, i, 0.0, latency, None, {}) for i in range(count)]

    measured = FleetMeasurement(
        "calibration",
        10.0,
        (*requests("a", 1.2, 3), *requests("b", 1.3, 1), *requests("c", 5.0, 2)),
        {},
        {},
        {},
        {},
        {},
        6,
    )
    # a: 0.2 s over 2 calls, 3 requests; b: 0.3 s over 1 call, 1 request; c calls nothing
    on_ray = dict.fromkeys("abc", "ray")
    expected = (3 * 0.2 + 1 * 0.3) / (3 * 2 + 1 * 1)
    overhead = call_overhead(predicted, measured, {"a": 2, "b": 1, "c": 0}, on_ray)
    assert overhead == pytest.approx({"ray": expected})
    assert call_overhead(predicted, measured, {"c": 0}, on_ray) == {}
    # Each runtime its own: b keeps the light agent and calls through a gateway.
    mixed = {"a": "ray", "b": "agent", "c": "ray"}
    overhead = call_overhead(predicted, measured, {"a": 2, "b": 1, "c": 0}, mixed)
    assert overhead == pytest.approx({"ray": 0.2 / 2, "agent": 0.3})
    faster = FleetMeasurement("x", 10.0, tuple(requests("a", 0.5, 2)), {}, {}, {}, {}, {}, 2)
    assert call_overhead(predicted, faster, {"a": 1}, on_ray) == {"ray": 0.0}


def test_the_node_table_shows_the_worker_replicas_each_node_ran(demo) -> None:
    """``in-process`` where a node had no workers; the fewest–most where it had (a sample of
    an autoscaled run), beside the measured and predicted wait."""
    from rich.console import Console

    from qsplit.cli.fleet_demo_cmd import node_table

    outcome, _ = demo
    fleet = outcome.measurements[0]
    node = outcome.results[0].nodes[0].node
    scaled = replace(fleet, worker_replicas={node: ((1.0, 1), (2.0, 3), (3.0, 2))})
    console = Console(record=True, width=200)
    console.print(node_table(outcome.results[:1], [fleet]))
    console.print(node_table(outcome.results[:1], [scaled]))
    lines = [line for line in console.export_text().splitlines() if f" {node} " in line]
    assert len(lines) == 2
    assert "in-process" in lines[0] and "1–3" in lines[1] and "in-process" not in lines[1]
    wait = outcome.results[0].nodes[0].wait_s
    assert f"/ {wait.predicted * 1e3:.0f} ms" in lines[0]


def test_autoscaled_workers_are_predicted_by_simulating_the_autoscaler(tmp_path: Path) -> None:
    """With ``--node-workers autoscale`` the p50/p95 come from the fleet simulation with
    Serve's autoscaler (the model's steady state stays for the in-process default), the
    simulated workers per node come with them, and the file says which prediction it holds."""
    from qsplit.assets import bundled_model_path
    from qsplit.fleet import batch_profile_for, deployed_choice, fleet_profiles, simulate
    from qsplit.model import analyze
    from qsplit.serve import NodeScaling

    scaling = NodeScaling("autoscale", downscale_delay_s=5)
    config = FleetDemoConfig(
        out=tmp_path,
        infra=EXAMPLE,
        devices=6,
        baselines=("device-only",),
        batch_one=False,
        calibrate=False,
        plot=False,
        node_scaling=scaling,
    )
    outcome = run_fleet_demo(config, runner=StandIn())
    assert outcome.autoscale == scaling.policy
    fleet = outcome.result("fleet")
    steady = outcome.plan.outcome
    _, graph = analyze(str(bundled_model_path()))
    problem, choice = deployed_choice(
        outcome.plan.fleet,
        graph,
        fleet_profiles(outcome.plan.fleet, graph),
        outcome.plan.deployment(),
        batching=batch_profile_for(graph.model.sha256),
    )
    simulated = simulate(
        problem, choice, seed=config.seed, autoscale=scaling.policy, window_s=config.duration_s
    )
    assert fleet.p95_s.predicted == pytest.approx(simulated.latency_p95_s)
    assert fleet.p95_s.predicted != pytest.approx(steady.latency_p95_s, rel=1e-6)
    assert outcome.simulated["fleet"] == simulated and "device-only" in outcome.simulated
    assert len(simulated.window_band()) == 3
    document = json.loads((tmp_path / FLEET_DEMO_FILE).read_text())
    assert document["prediction"] == "simulated-autoscaler"
    assert document["autoscale"]["downscale_delay_s"] == 5
    fleet_doc = document["configurations"][0]
    assert fleet_doc["predicted_workers"] == {k: list(v) for k, v in simulated.servers.items()}
    assert fleet_doc["predicted_window_p95_s"] == list(simulated.window_band())
    from rich.console import Console

    from qsplit.cli.fleet_demo_cmd import configuration_table, node_table

    console = Console(record=True, width=200)
    console.print(configuration_table(outcome.results, outcome.autoscale, outcome.simulated))
    console.print(node_table(outcome.results, outcome.measurements, outcome.simulated))
    text = console.export_text()
    assert "the fleet simulation with Serve's autoscaler" in text and "down 5 s" in text
    node, (mean, _, _) = next(iter(simulated.servers.items()))
    row = next(line for line in text.splitlines() if line.startswith("│ fleet ") and node in line)
    assert f"({mean:.1f})" in row
    band = " / ".join(f"{q * 1e3:.0f} ms" for q in simulated.window_band())
    assert any(line.startswith("│ fleet ") and band in line for line in text.splitlines())
