"""The planner end to end: problem checks, plan files, infeasibility, loading, the CLI."""

from __future__ import annotations

import inspect
import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from plan_helpers import graph, infra, noise, profile, random_dag
from typer.testing import CliRunner

import qsplit.plan
from qsplit.cli import app
from qsplit.cli._format import status_text
from qsplit.errors import InfeasibleError, InputError, SchemaError
from qsplit.infra import Link
from qsplit.plan import (
    TIME_LIMIT_S,
    Bounds,
    Plan,
    PlanningProblem,
    Predicted,
    Start,
    evaluate,
    load_problem,
    plan,
)
from qsplit.profile import LinkMeasurement, LinkProfile

GRAPH = graph(
    {"a": 1000, "b": 400, "c": 4000},
    [
        ("x", None, ["a"], 40000, False),
        ("h", "a", ["b", "c"], 80000, False),
        ("k", "b", ["c"], 4000, False),
        ("y", "c", [], 400, True),
    ],
)
INFRA = infra(
    [("dev", 3.0, 3.5, 10**9), ("edge", 6.0, 2.0, 10**9)],
    [("dev", "edge", 5e6, 0.005), ("edge", "dev", 20e6, 0.005)],
)
TIMES = {"a": (0.1, 0.05), "b": (0.2, None), "c": (0.3, 0.1)}


def _profiles(nodes=("dev", "edge"), scale={"dev": 1.0, "edge": 0.3}):  # noqa: B006
    return {
        n: profile(
            n,
            {b: (f * scale[n], None if q is None else q * scale[n]) for b, (f, q) in TIMES.items()},
        )
        for n in nodes
    }


NOISE = noise(["a", "b", "c"], 0.01, {("a",): 0.02, ("c",): 0.03, ("a", "c"): 0.01})


def _problem(**kwargs) -> PlanningProblem:
    return PlanningProblem(GRAPH, INFRA, _profiles(), NOISE, **kwargs)


def test_quantizable_needs_int8_timings_everywhere() -> None:
    assert _problem().quantizable == ("a", "c")
    assert PlanningProblem(GRAPH, INFRA, _profiles()).quantizable == ()


def test_inconsistent_inputs_are_listed_together() -> None:
    profiles = _profiles()
    profiles["edge"] = replace(profiles["edge"], model_sha256="f" * 64)
    profiles["dev"] = replace(profiles["dev"], blocks={"a": profiles["dev"].blocks["a"]})
    with pytest.raises(InputError) as info:
        PlanningProblem(
            GRAPH,
            INFRA,
            profiles,
            replace(NOISE, quantizable=("a", "zz")),
            w_latency=0,
            w_energy=0,
            sources={"profile:edge": "edge.json"},
        )
    message = str(info.value)
    assert "6 inconsistent planning input(s)" in message
    assert "terms[1]: a term must name distinct quantizable blocks" in message
    assert "edge.json: model.sha256" in message
    assert "2 block(s) without timing" in message
    assert "unknown block(s), first 'zz'" in message
    assert "weights are both 0" in message


def test_missing_profile_and_noise_bound_without_model() -> None:
    with pytest.raises(InputError, match="no compute profile") as info:
        PlanningProblem(GRAPH, INFRA, _profiles(("dev",)), bounds=Bounds(noise_max=0.1))
    assert "needs a noise model" in str(info.value)


def test_predicted_values_are_physical_not_normalised(tmp_path: Path) -> None:
    problem = _problem(bounds=Bounds(noise_max=0.04))
    result = plan(problem, with_baselines=False)
    ev = evaluate(problem, result.assignment, result.quantized)
    assert (result.predicted.latency_s, result.predicted.energy_j) == (ev.latency_s, ev.energy_j)
    assert result.predicted.noise == ev.noise <= 0.04 + 1e-9
    assert result.payoff is not None
    assert result.payoff.latency_min_s <= ev.latency_s <= result.payoff.latency_max_s + 1e-9
    assert 0 <= result.objective <= 1 + 1e-9
    # Four payoff solves, and the weighted one unless one plan is least in both (then it is it).
    solves = 4 if result.payoff.utopian() else 5
    assert result.solver.status == "optimal" and result.solver.solves == solves
    assert [c.node for c in result.components]
    assert sorted(b for c in result.components for b in c.blocks) == ["a", "b", "c"]


def test_plan_file_round_trip(tmp_path: Path) -> None:
    result = plan(_problem(bounds=Bounds(noise_max=0.04, device_energy_budget_j=5.0)))
    path = result.save(tmp_path / "plan.json")
    loaded = Plan.load(path)
    assert loaded == result
    document = json.loads(path.read_text())
    assert (document["kind"], document["schema_version"]) == ("plan", 1)
    assert set(document) >= {
        "model",
        "assignment",
        "quantized",
        "components",
        "predicted",
        "solver",
        "baselines",
        "objective",
        "bounds",
    }
    assert set(document["solver"]) >= {"name", "status", "gap", "solve_time_s", "build_time_s"}
    (tmp_path / "other.json").write_text(json.dumps({"kind": "layergraph", "schema_version": 1}))
    with pytest.raises(SchemaError, match="expected a 'plan' file"):
        Plan.load(tmp_path / "other.json")


def test_single_weight_breaks_ties_on_the_other_objective() -> None:
    result = plan(_problem(w_latency=1.0, w_energy=0.0), with_baselines=False)
    assert result.payoff is None and result.objective is None
    assert result.solver.solves == 2


def test_binding_noise_bound_is_named_with_its_least_value() -> None:
    # Only quantizing a and c brings the device's energy under budget; the noise bound forbids it.
    device_only = infra([("dev", 3.0, 3.5, 10**9)], [])
    problem = PlanningProblem(
        GRAPH,
        device_only,
        _profiles(("dev",)),
        NOISE,
        bounds=Bounds(noise_max=0.01, device_energy_budget_j=3.0 * (0.05 + 0.2 + 0.1)),
    )
    with pytest.raises(InfeasibleError) as info:
        plan(problem)
    error = info.value
    assert error.constraint == "noise"
    assert error.least_feasible == pytest.approx(0.01 + 0.02 + 0.03 + 0.01)
    assert "noise bound 0.01 is infeasible; the least feasible is 0.07" in str(error)
    assert "device energy budget 1.05 J is infeasible; the least feasible is 1.8 J" in str(error)


def test_energy_budget_too_small_everywhere() -> None:
    problem = _problem(bounds=Bounds(device_energy_budget_j=1e-4))
    with pytest.raises(InfeasibleError) as info:
        plan(problem)
    assert info.value.constraint == "device-energy"
    # the least the device can spend: send x to the edge (its radio), everything else there
    least = 3.5 * (0.005 + 40000 / 5e6)
    assert info.value.least_feasible == pytest.approx(least)
    assert "--energy-budget" in str(info.value)


def test_cbc_finds_the_same_plan() -> None:
    problem = _problem(bounds=Bounds(noise_max=0.04))
    highs, cbc = plan(problem, with_baselines=False), plan(problem, "cbc", with_baselines=False)
    assert cbc.solver.name == "cbc"
    assert cbc.objective == pytest.approx(highs.objective, abs=1e-6)


def test_unknown_solver() -> None:
    with pytest.raises(InputError, match="unknown solver 'glpk'"):
        plan(_problem(), "glpk")


def _write_inputs(tmp_path: Path) -> dict[str, Path]:
    GRAPH.save(str(tmp_path / "graph.json"))
    profiles = tmp_path / "profiles"
    for p in _profiles().values():
        p.save(str(profiles / f"{p.node}.json"))
    LinkProfile((LinkMeasurement("dev", "edge", 0.005, 5e6),)).save(str(profiles / "links.json"))
    NOISE.save(str(tmp_path / "noise.json"))
    infra_yaml = tmp_path / "infra.yaml"
    infra_yaml.write_text(
        "schema_version: 1\ndevice: dev\nnodes:\n"
        "  - {name: dev, role: device, compute_power_w: 3, transmit_power_w: 3.5, "
        "memory_bytes: 1GB}\n"
        "  - {name: edge, role: edge, compute_power_w: 6, transmit_power_w: 2, memory_bytes: 1GB}\n"
        "links:\n  - {from: dev, to: edge, bandwidth: 5MB/s, latency: 5ms}\n"
        "  - {from: edge, to: dev, bandwidth: 20MB/s, latency: 5ms}\n"
    )
    return {
        "graph": tmp_path / "graph.json",
        "profiles": profiles,
        "noise": tmp_path / "noise.json",
        "infra": infra_yaml,
    }


def test_load_problem_reads_a_profile_directory(tmp_path: Path) -> None:
    files = _write_inputs(tmp_path)
    problem = load_problem(files["graph"], files["infra"], [files["profiles"]], files["noise"])
    assert set(problem.profiles) == {"dev", "edge"}
    assert problem.quantizable == ("a", "c")
    with pytest.raises(InputError, match="second profile for node 'dev'"):
        load_problem(
            files["graph"], files["infra"], [files["profiles"], files["profiles"] / "dev.json"]
        )
    with pytest.raises(InputError, match="qsplit analyze"):
        load_problem(tmp_path / "model.onnx", files["infra"], [files["profiles"]])


def test_cli_plan_writes_the_plan_and_compares_baselines(tmp_path: Path) -> None:
    files = _write_inputs(tmp_path)
    out = tmp_path / "plan.json"
    args = [
        "plan",
        "--graph",
        str(files["graph"]),
        "--infra",
        str(files["infra"]),
        "--profiles",
        str(files["profiles"]),
        "--noise",
        str(files["noise"]),
        "--noise-max",
        "0.04",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args, terminal_width=140)
    assert result.exit_code == 0, result.output
    assert "Predicted per inference" in result.output and "plan" in result.output
    saved = Plan.load(out)
    assert saved.bounds.noise_max == 0.04
    for name in saved.baselines:
        assert name in result.output

    infeasible = CliRunner().invoke(app, [*args, "--energy-budget", "0.00001"])
    assert isinstance(infeasible.exception, InfeasibleError)


def test_cli_plan_prints_no_solver_banner(tmp_path: Path) -> None:
    """A real process: HiGHS ≥ 1.16 writes its banner straight to file descriptor 1 when the
    first instance is made, past anything Python redirects, into the plan's table."""
    files = _write_inputs(tmp_path)
    command = [sys.executable, "-m", "qsplit", "plan", "--graph", str(files["graph"])]
    command += ["--infra", str(files["infra"]), "--profiles", str(files["profiles"])]
    command += ["--out", str(tmp_path / "plan.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Predicted per inference" in result.stdout
    assert "Running HiGHS" not in result.stdout + result.stderr


def test_cli_plans_for_a_device_behind_an_edge(tmp_path: Path) -> None:
    """The shipped example has no device ↔ cloud link: every baseline, cloud-only included,
    routes through the edge, and the plan is priced the same way."""
    infra_yaml = Path(qsplit.__file__).parent / "examples" / "device-behind-edge.yaml"
    GRAPH.save(str(tmp_path / "graph.json"))
    scale = {"device": 1.0, "edge": 0.3, "cloud": 0.05}
    for p in _profiles(tuple(scale), scale).values():
        p.save(str(tmp_path / "profiles" / f"{p.node}.json"))
    out = tmp_path / "plan.json"
    args = ["plan", "--graph", str(tmp_path / "graph.json"), "--infra", str(infra_yaml)]
    args += ["--profiles", str(tmp_path / "profiles"), "--out", str(out)]
    result = CliRunner().invoke(app, args, terminal_width=140)
    assert result.exit_code == 0, result.output
    saved = Plan.load(out)
    assert {"device-only", "edge-only", "cloud-only", "best-split", "min-cut"} <= set(
        saved.baselines
    )
    problem = load_problem(tmp_path / "graph.json", infra_yaml, [tmp_path / "profiles"])
    cloud = evaluate(problem, dict.fromkeys(GRAPH.block_names, "cloud"))
    assert ("device", "cloud") not in cloud.transfer_s
    assert saved.baselines["cloud-only"].latency_s == pytest.approx(cloud.latency_s)
    assert saved.predicted.energy_j == pytest.approx(
        evaluate(problem, saved.assignment, saved.quantized).energy_j
    )


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["plan", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example: qsplit plan" in result.output


def test_public_api_is_importable_and_public() -> None:
    for name in qsplit.plan.__all__:
        assert not name.startswith("_")
        assert getattr(qsplit.plan, name) is not None


def test_measured_links_replace_the_nominal_ones(tmp_path: Path) -> None:
    files = _write_inputs(tmp_path)
    slow = LinkProfile((LinkMeasurement("dev", "edge", 0.2, 1e5),))
    problem = load_problem(
        files["graph"], files["infra"], [files["profiles"]], files["noise"], links=slow
    )
    assert problem.infra.link("dev", "edge").latency_s == 0.2
    assert problem.infra.link("edge", "dev").latency_s == 0.005
    with pytest.raises(InputError, match="unknown node 'mars'"):
        INFRA.with_links([Link("dev", "mars", 1e6, 0.01)])


def test_time_limited_plan_says_it_stopped_at_the_limit(tmp_path) -> None:
    # 60 blocks on three nodes with the critical path: seconds to prove, not milliseconds.
    rng = random.Random(7)
    big = random_dag(rng, 60)
    nodes = infra(
        [("dev", 3.0, 3.5, 10**9), ("edge", 6.0, 2.0, 10**9), ("cloud", 30.0, 0.1, 10**9)],
        [
            (a, b, 5e6, 0.01)
            for a in ("dev", "edge", "cloud")
            for b in ("dev", "edge", "cloud")
            if a != b
        ],
    )
    profiles = {
        n: profile(n, {b: (s * rng.uniform(1e-3, 5e-2), None) for b in big.block_names})
        for n, s in (("dev", 10), ("edge", 3), ("cloud", 1))
    }
    problem = PlanningProblem(big, nodes, profiles, latency_model="critical-path")
    result = plan(problem, time_limit_s=1e-3, with_baselines=False)
    assert result.solver.status == "time-limit"
    assert result.solver.time_limit_s == 1e-3
    assert result.predicted == Predicted.of(evaluate(problem, result.assignment, result.quantized))
    saved = Plan.load(result.save(tmp_path / "plan.json"))
    assert (saved.solver.status, saved.solver.time_limit_s) == ("time-limit", 1e-3)
    line = status_text(saved.solver.status, 0.031, saved.solver.time_limit_s)
    assert line.startswith("[bold yellow]stopped at the time limit (0.001 s)[/]")
    assert "gap 3.10%" in line


def test_plans_are_time_limited_by_default() -> None:
    assert inspect.signature(plan).parameters["time_limit_s"].default == TIME_LIMIT_S > 0
    rng = random.Random(3)
    small = random_dag(rng, 4)
    nodes = infra(
        [("dev", 3.0, 3.5, 10**9), ("edge", 6.0, 2.0, 10**9)],
        [("dev", "edge", 5e6, 0.01), ("edge", "dev", 5e6, 0.01)],
    )
    profiles = {
        n: profile(n, dict.fromkeys(small.block_names, (0.01, None))) for n in ("dev", "edge")
    }
    result = plan(PlanningProblem(small, nodes, profiles), with_baselines=False)
    assert (result.solver.status, result.solver.gap) == ("optimal", 0.0)
    assert result.solver.time_limit_s == TIME_LIMIT_S


def test_a_tie_goes_to_the_least_latency_whatever_the_solver_returned() -> None:
    """At equal weights a two-point front ties exactly (each extreme scores 0.5): the plan must
    not depend on which of the two HiGHS happened to return."""
    from types import SimpleNamespace

    from qsplit.plan._planner import tie_break

    fast = ({"a": "cloud"}, (), SimpleNamespace(latency_s=0.886, energy_j=9.30))
    frugal = ({"a": "device"}, (), SimpleNamespace(latency_s=0.908, energy_j=2.65))
    middle = ({"a": "edge"}, (), SimpleNamespace(latency_s=0.900, energy_j=5.00))
    score = {0.886: 0.5, 0.908: 0.5, 0.900: 0.6}

    def value(evaluation: SimpleNamespace) -> float:
        return score[evaluation.latency_s]

    for returned in (fast, frugal):
        assert tie_break(value, (returned, fast, frugal)) is fast
    assert tie_break(value, (middle, fast, frugal)) is fast
    score[0.900] = 0.4
    assert tie_break(value, (middle, fast, frugal)) is middle


def test_a_start_plan_warm_starts_the_solve_and_does_not_change_the_optimum() -> None:
    problem = _problem(w_latency=1.0, w_energy=0.0)
    cold = plan(problem, with_baselines=False)
    for start in (
        Start(dict.fromkeys(GRAPH.block_names, "dev")),
        Start(dict.fromkeys(GRAPH.block_names, "edge"), quantized=("a", "c")),
        Start(cold.assignment, cold.quantized),
    ):
        warm = plan(problem, with_baselines=False, start=start)
        assert warm.assignment == cold.assignment
        assert warm.quantized == cold.quantized
        assert warm.predicted == cold.predicted


@pytest.mark.parametrize(
    ("assignment", "quantized", "says"),
    [
        ({"a": "dev", "b": "dev"}, (), "unassigned, first 'c'"),
        ({"a": "dev", "b": "dev", "c": "moon"}, (), "unknown block or node c → moon"),
        ({"a": "dev", "b": "dev", "c": "dev"}, ("b",), "block 'b' cannot be quantized"),
    ],
)
def test_a_start_that_does_not_fit_the_problem_is_refused(assignment, quantized, says) -> None:
    with pytest.raises(InputError, match=says) as refused:
        plan(_problem(), start=Start(assignment, quantized))
    assert refused.value.field == "start"
