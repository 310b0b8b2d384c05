"""``plan_fleet`` on the shipped example fleet with the bundled YOLO11n, and the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qsplit
from qsplit.assets import bundled_model_path
from qsplit.cli import app
from qsplit.errors import InputError, SchemaError
from qsplit.fleet import (
    ALONE,
    Choice,
    FleetPlan,
    assess,
    deployed_choice,
    fleet_profiles,
    load_fleet,
    load_fleet_plan,
    plan_fleet,
    planning_value,
)
from qsplit.model import analyze

EXAMPLE = Path(qsplit.__file__).parent / "examples" / "fleet.yaml"


@pytest.fixture(scope="module")
def result() -> FleetPlan:
    fleet = load_fleet(EXAMPLE)
    _, graph = analyze(str(bundled_model_path()))
    return plan_fleet(fleet, graph, fleet_profiles(fleet, graph))


def test_fleet_plan_keeps_shared_nodes_under_the_bound(result: FleetPlan) -> None:
    assert result.outcome.feasible
    for node in result.outcome.nodes:
        assert node.utilisation <= result.problem.utilisation_max + 1e-9
    assert math.isfinite(result.outcome.latency_p95_s)
    assert result.outcome.capacity_hz >= result.outcome.throughput_hz


def test_contention_blind_plans_overload_the_edge(result: FleetPlan) -> None:
    """Planned alone, the cameras offload to the edge and saturate it; the fleet plan sends
    them to the cloud through the edge instead."""
    _, alone = result.baselines[ALONE]
    assert not alone.feasible
    assert max(n.utilisation for n in alone.nodes) > 1
    assert math.isinf(alone.latency_p95_s)
    assert result.outcome.capacity_hz > 1.5 * alone.capacity_hz
    assert set(result.choice.of(result.problem, "cameras").assignment.values()) == {"cloud"}


def test_fleet_plan_is_no_worse_than_any_feasible_baseline(result: FleetPlan) -> None:
    mine = planning_value(result.problem, result.choice)[1]
    for name, (choice, outcome) in result.baselines.items():
        if outcome.feasible:
            assert mine <= planning_value(result.problem, choice)[1] * (1 + 5e-3), name


def test_plan_file_says_what_serving_needs(result: FleetPlan, tmp_path: Path) -> None:
    document = json.loads(result.save(tmp_path / "fleet-plan.json").read_text())
    assert document["kind"] == "fleet-plan" and document["schema_version"] == 1
    assert document["solver"]["status"] == "optimal"
    blocks = {b.name for b in analyze(str(bundled_model_path()))[1].blocks}
    for entry in document["classes"]:
        assert set(entry["assignment"]) == blocks
        assert set(entry["assignment"].values()) <= {entry["name"], "edge", "cloud"}
    hosted = {s["node"]: s for s in document["shared"]}
    assert hosted["edge"]["replicas"] == 16 and hosted["cloud"]["replicas"] == 48
    for shared in document["shared"]:
        assert shared["batch_size"] in document["objective"]["batch_sizes"]
        for component in shared["components"]:
            assert component["blocks"] and component["classes"] and component["rate_hz"] > 0
    assert set(document["baselines"]) == {"alone", "cloud-only", "device-only"}


def test_plan_file_reads_back_as_a_deployment(result: FleetPlan, tmp_path: Path) -> None:
    deployment = load_fleet_plan(result.save(tmp_path / "fleet-plan.json"))
    for entry, c in zip(deployment.classes, result.fleet.classes, strict=True):
        assert (entry.name, entry.count, entry.rate_hz) == (c.name, c.count, c.rate_hz)
        assert entry.runtime == c.runtime  # as the fleet file says: the cameras keep agents
        assert entry.assignment == result.choice.of(result.problem, c.name).assignment
    for entry, node in zip(deployment.shared, result.outcome.nodes, strict=True):
        assert (entry.node, entry.replicas, entry.batch_size) == (
            node.node,
            node.replicas,
            node.batch,
        )
        assert [h.blocks for h in entry.components] == [g.blocks for g in node.groups]
    broken = json.loads((tmp_path / "fleet-plan.json").read_text())
    del broken["shared"][0]["replicas"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(SchemaError, match=r"broken\.json: replicas: malformed fleet plan"):
        load_fleet_plan(tmp_path / "broken.json")
    # A plan file from before classes had a runtime: its devices run Ray, as they were served.
    older = json.loads((tmp_path / "fleet-plan.json").read_text())
    for c in older["classes"]:
        del c["runtime"]
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert {c.runtime for c in load_fleet_plan(tmp_path / "older.json").classes} == {"ray"}
    older["classes"][0]["runtime"] = "docker"
    (tmp_path / "older.json").write_text(json.dumps(older))
    with pytest.raises(SchemaError, match="runtime: 'docker' is neither 'ray' nor 'agent'"):
        load_fleet_plan(tmp_path / "older.json")
    with pytest.raises(SchemaError, match="expected a 'fleet-plan' file"):
        load_fleet_plan(_plan_of_another_kind(tmp_path))


def test_the_plan_and_its_baselines_are_deployments(result: FleetPlan, tmp_path: Path) -> None:
    read_back = load_fleet_plan(result.save(tmp_path / "fleet-plan.json"))
    assert replace(result.deployment(), source=read_back.source) == read_back
    for name, (choice, outcome) in result.baselines.items():
        deployment = result.deployment(name)
        assert deployment.source == name
        for entry in deployment.classes:
            assert entry.assignment == choice.of(result.problem, entry.name).assignment
        assert [s.node for s in deployment.shared] == [n.node for n in outcome.nodes]
        assert all(s.batch_size == 1 for s in deployment.shared)
    with pytest.raises(InputError, match="no baseline 'nope'"):
        result.deployment("nope")


def _plan_of_another_kind(tmp_path: Path) -> Path:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"kind": "plan", "schema_version": 1}))
    return path


def test_identical_classes_share_candidates(result: FleetPlan) -> None:
    """A class is planned once per distinct device, links and rate; a copy under another name
    gets the same plans with its own device name."""
    problem = result.problem
    cams = problem.candidates["cameras"]
    copy = [k.for_device("cameras", "more-cameras") for k in cams]
    assert [k.latency_s for k in copy] == [k.latency_s for k in cams]
    assert all("cameras" not in k.assignment.values() for k in copy if k.work)
    assert Choice({"cameras": 0}, {}).of(problem, "cameras") is cams[0]


def test_throughput_objective_carries_the_most(result: FleetPlan) -> None:
    """Minimising the bottleneck first gives at least the capacity of the default plan and of
    every baseline that meets the bound."""
    fleet = load_fleet(EXAMPLE)
    _, graph = analyze(str(bundled_model_path()))
    widest = plan_fleet(fleet, graph, fleet_profiles(fleet, graph), objective="throughput")
    assert widest.outcome.feasible
    capacities = [o.capacity_hz for _, o in result.baselines.values() if o.feasible]
    for capacity in [result.outcome.capacity_hz, *capacities]:
        assert widest.outcome.capacity_hz >= capacity * (1 - 1e-6)


def test_unknown_objective_is_refused() -> None:
    fleet = load_fleet(EXAMPLE)
    _, graph = analyze(str(bundled_model_path()))
    with pytest.raises(InputError, match="objective 'fastest' is unknown"):
        plan_fleet(fleet, graph, fleet_profiles(fleet, graph), objective="fastest")  # type: ignore[arg-type]


def test_cli_plan_and_simulate(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "fleet-plan.json"
    done = runner.invoke(app, ["fleet", "plan", str(EXAMPLE), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "Fleet plan — 500 devices" in done.output and "alone" in done.output
    assert json.loads(out.read_text())["kind"] == "fleet-plan"
    plot = tmp_path / "projection.png"
    args = ["fleet", "simulate", str(EXAMPLE), "--devices", "900", "--steps", "3"]
    done = runner.invoke(app, [*args, "--requests", "3000", "--plot", str(plot)])
    assert done.exit_code == 0, done.output
    assert "cloud: reaches ρ = 0.8 at 800 devices, saturates (ρ = 1) at 1000" in done.output
    assert "edge: unused" in done.output
    assert plot.stat().st_size > 10_000
    replayed = runner.invoke(
        app, [*args, "--requests", "3000", "--plot", str(plot), "--plan", str(out)]
    )
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.splitlines()[-4:-1] == done.output.splitlines()[-4:-1]


def test_cli_batch_wait_reaches_the_plan_file(tmp_path: Path) -> None:
    out = tmp_path / "fleet-plan.json"
    args = ["fleet", "plan", str(EXAMPLE), "--batch-wait", "0.25", "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    shared = json.loads(out.read_text())["shared"]
    assert shared and {s["batch_wait_s"] for s in shared} == {0.25}
    refused = CliRunner().invoke(app, [*args[:-2], "--batch-wait", "-1"])
    assert refused.exit_code == 2 and "--batch-wait" in refused.output


def test_a_plan_file_replays_as_the_same_prediction(result: FleetPlan, tmp_path: Path) -> None:
    fleet = result.fleet
    _, graph = analyze(str(bundled_model_path()))
    deployment = load_fleet_plan(result.save(tmp_path / "fleet-plan.json"))
    problem, choice = deployed_choice(fleet, graph, fleet_profiles(fleet, graph), deployment)
    again = assess(problem, choice)
    assert again.latency_p95_s == pytest.approx(result.outcome.latency_p95_s)
    assert [n.utilisation for n in again.nodes] == pytest.approx(
        [n.utilisation for n in result.outcome.nodes]
    )
    other = load_fleet(EXAMPLE).scaled(1000)
    with pytest.raises(InputError, match="class 'cameras' is not in the plan"):
        deployed_choice(
            other,
            graph,
            fleet_profiles(other, graph),
            replace(deployment, classes=deployment.classes[1:]),
        )
