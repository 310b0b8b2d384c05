"""``run_fleet_demo``'s orchestration without Ray: a stand-in runner measures each deployment it
is handed, and the demo must plan, run every configuration once, predict each from the
deployment that ran, and write the results file and figures."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import qsplit
from qsplit.assets import bundled_model_path
from qsplit.demo import FLEET_DEMO_FILE, FleetDemoConfig, FleetDemoOutcome, run_fleet_demo
from qsplit.demo._fleet_predict import (
    SPREAD_MIN_REQUESTS,
    CallCost,
    Predictor,
    call_overhead,
    device_waits,
)
from qsplit.fleet import (
    ClassOutcome,
    FleetDeployment,
    Outcome,
    assess,
    batch_profile_for,
    deployed_choice,
    fleet_profiles,
    load_fleet,
    plan_fleet,
)
from qsplit.fleet._model import device_wait
from qsplit.model import analyze
from qsplit.serve import FleetMeasurement, FleetRequest

EXAMPLE = Path(qsplit.__file__).parent / "examples" / "fleet.yaml"
TESTBED = Path(qsplit.__file__).parent / "examples" / "fleet-testbed.yaml"


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
    assert document["call_spread_s"] == {r: c.scale_s for r, c in outcome.call_cost.items()}
    median = document["configurations"][0]["median_cost"]
    assert median["latency_p95_s"] == pytest.approx(outcome.median_cost["fleet"].latency_p95_s)
    assert set(median["classes"]) == set(document["devices"])
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
    from qsplit.fleet import simulate
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


@pytest.fixture(scope="module")
def testbed() -> tuple[Predictor, FleetDeployment]:
    """The testbed's fleet plan (cameras on Ray, phones on the light agent) and its model."""
    fleet = load_fleet(TESTBED)
    _, graph = analyze(str(bundled_model_path()))
    profiles = fleet_profiles(fleet, graph)
    batching = batch_profile_for(graph.model.sha256)
    plan = plan_fleet(fleet, graph, profiles, batching=batching)
    return Predictor(fleet, graph, profiles, batching), plan.deployment()


def _calibration_run(
    predictor: Predictor,
    deployment: FleetDeployment,
    counts: Mapping[str, int],
    per_call: Mapping[str, tuple[float, float]],
    requests_per_device: int,
    seed: int = 1,
) -> FleetMeasurement:
    """A synthetic calibration run: each device's Poisson requests queue for it (M/D/1), Ray
    classes' requests wait a random time at each shared node (which the trace records), agent
    classes' the model's mean (unrecorded), and each call of a shared component costs
    ``shift + Exp(scale)`` more (runtime → ``(shift_s, scale_s)``), one draw per request."""
    rng = np.random.default_rng(seed)
    problem, choice, calls = predictor.problem(deployment, counts)
    predicted = assess(problem, choice)
    requests = []
    for c, spec in zip(deployment.classes, problem.fleet.classes, strict=True):
        cand = choice.of(problem, c.name)
        nodes = [w.node for w in cand.work]
        mean = next(o for o in predicted.classes if o.name == c.name).latency_mean_s
        untraced = mean - cand.latency_s - device_wait(cand, spec.rate_hz).mean_s
        shift, scale = per_call[c.runtime]
        for device in range(counts[c.name]):
            sent = np.cumsum(rng.exponential(1 / spec.rate_hz, requests_per_device))
            wait = 0.0
            for index, at in enumerate(sent):
                if index:
                    wait = max(0.0, wait + cand.device_busy_s - (at - sent[index - 1]))
                slots = {n: float(rng.exponential(0.05)) for n in nodes}
                forming = dict.fromkeys(nodes, 0.0)
                if c.runtime == "agent":
                    slots, forming = {}, {}
                waits = sum(slots.values()) if slots else untraced
                serving = calls[c.name] * (shift + rng.exponential(scale)) if scale else 0.0
                done = at + cand.latency_s + wait + waits + serving
                requests.append(
                    FleetRequest(c.name, device, index, float(at), done, None, slots, forming)
                )
    return FleetMeasurement("calibration", 60.0, tuple(requests), {}, {}, {}, {}, {}, 0)


def test_call_cost_fits_a_shifted_exponential_from_its_quartiles() -> None:
    """Many residuals give the scale; a handful with a stall in them no wild one; fewer than
    ``SPREAD_MIN_REQUESTS``, none."""
    rng = np.random.default_rng(3)
    draws = 0.02 + rng.exponential(0.01, 4000)
    cost = CallCost.fit(0.025, draws)
    assert cost.scale_s == pytest.approx(0.01, rel=0.05)
    assert cost.median_s == 0.025
    assert cost.shift_s == pytest.approx(0.025 - cost.scale_s * math.log(2), rel=1e-12)
    few = [*(0.02 + rng.exponential(0.01, SPREAD_MIN_REQUESTS)), 5.0]  # one request stalled 5 s
    assert 0 < CallCost.fit(0.025, few).scale_s < 0.04
    assert CallCost.fit(0.025, few[: SPREAD_MIN_REQUESTS - 1]).scale_s == 0.0


def test_device_waits_replay_each_device_queue() -> None:
    """Lindley's recursion per device, in the order sent: a request sent while its device is
    still busy waits for the rest of that work."""
    sent = {(0, 0): 0.0, (0, 1): 0.3, (0, 2): 0.5, (0, 3): 5.0, (1, 0): 0.1}
    requests = [FleetRequest("a", d, i, t, t + 2.0, None, {}) for (d, i), t in sent.items()]
    requests.append(FleetRequest("b", 0, 0, 0.2, 3.0, None, {}))
    waits = device_waits(requests, "a", 1.0)
    assert waits == pytest.approx({(0, 0): 0.0, (0, 1): 0.7, (0, 2): 1.5, (0, 3): 0.0, (1, 0): 0.0})


def test_calibration_recovers_each_runtime_spread(testbed) -> None:
    """The Ray cameras' and the agent phones' costs per call, drawn from known shifted
    exponentials, are recovered apart, the trace's waits and the devices' queues removed."""
    predictor, deployment = testbed
    counts = {"cameras": 3, "phones": 2}
    truth = {"ray": (0.02, 0.015), "agent": (0.03, 0.04)}
    measured = _calibration_run(predictor, deployment, counts, truth, 150)
    costs = predictor.calibrate(deployment, measured, counts)
    assert set(costs) == {"ray", "agent"}
    for runtime, (_, scale) in truth.items():
        assert costs[runtime].scale_s == pytest.approx(scale, rel=0.2), runtime
    # no spread in the run: no spread found, however the devices and the nodes queued
    fixed = _calibration_run(predictor, deployment, counts, {"ray": (0.02, 0), "agent": (0, 0)}, 20)
    assert all(c.scale_s < 1e-9 for c in predictor.calibrate(deployment, fixed, counts).values())


def test_the_spread_widens_the_p95_and_keeps_the_p50(testbed) -> None:
    """At the same median cost per call, a spread raises a calling class's p95 and leaves its
    p50 within a few percent; a fixed cost (a number, or a ``CallCost`` without spread) is the
    prediction it always was: each candidate that much slower, nothing else."""
    predictor, deployment = testbed
    fixed = {"ray": 0.03, "agent": 0.04}
    old = predictor.outcome(deployment, fixed)
    assert predictor.outcome(deployment, {r: CallCost(s) for r, s in fixed.items()}) == old
    problem, choice, calls = predictor.problem(deployment)
    runtimes = {c.name: c.runtime for c in deployment.classes}
    slower = {
        n: tuple(replace(k, latency_s=k.latency_s + calls[n] * fixed[runtimes[n]]) for k in ks)
        for n, ks in problem.candidates.items()
    }
    assert assess(replace(problem, candidates=slower), choice) == old
    spread = predictor.outcome(deployment, {r: CallCost(s, 0.02) for r, s in fixed.items()})
    for before, after in zip(old.classes, spread.classes, strict=True):
        assert calls[before.name] > 0
        assert after.latency_p50_s == pytest.approx(before.latency_p50_s, rel=0.03)
        grew_p50 = after.latency_p50_s - before.latency_p50_s
        assert after.latency_p95_s - before.latency_p95_s > max(grew_p50, 0.0) + 1e-3
