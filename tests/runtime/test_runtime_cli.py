"""``qsplit deploy`` and ``qsplit run`` against real agents, from a plan file."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import synthetic
from agents import AgentProcess, running_agents
from qsplit._jsonio import read_json, write_json
from qsplit.assets import sample_images_dir
from qsplit.cli import app
from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.profile import BlockTiming, ComputeProfile

PREDICTED = {"latency_s": 0.25, "energy_j": 1.5, "device_energy_j": 0.5, "noise": 0.0}
POWER = {"device": (2.0, 3.0), "edge": (5.0, 0.5)}
"""Compute and transmit power of the test nodes, distinct so that energy pins the formula."""


def write_plan(
    path: Path, model: Path, assignment: dict[str, str], quantized: Sequence[str] = ()
) -> Path:
    """A minimal plan file: the runtime reads the model hash, the assignment, the quantized
    blocks and the predictions."""
    body = {
        "model": {"sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
        "assignment": assignment,
        "quantized": list(quantized),
        "components": [],
        "predicted": PREDICTED,
        "objective": {
            "w_latency": 1.0,
            "w_energy": 0.0,
            "latency_model": "sum",
            "value": None,
            "payoff": None,
        },
        "bounds": {"noise_max": None, "device_energy_budget_j": None, "memory": False},
        "solver": {
            "name": "test",
            "status": "optimal",
            "gap": 0.0,
            "solve_time_s": 0.0,
            "build_time_s": 0.0,
            "solves": 1,
        },
    }
    return write_json(path, "plan", 1, body)


def write_infra(path: Path, agents: dict[str, AgentProcess]) -> Path:
    nodes = [
        {
            "name": n,
            "role": n,
            "compute_power_w": POWER[n][0],
            "transmit_power_w": POWER[n][1],
            "memory_bytes": "1GiB",
            "address": a.address,
        }
        for n, a in agents.items()
    ]
    links = [
        {"from": "device", "to": "edge", "bandwidth": "10MB/s", "latency": "1ms"},
        {"from": "edge", "to": "device", "bandwidth": "10MB/s", "latency": "1ms"},
    ]
    document = {"schema_version": 1, "device": "device", "nodes": nodes, "links": links}
    path.write_text(yaml.safe_dump(document))
    return path


def cost_model_energy(request: dict) -> float:
    """The cost model's energy, written out: compute × compute power + sent × transmit power."""
    compute = sum(POWER[r["node"]][0] * r["compute_s"] for r in request["runs"])
    sent = sum(
        POWER[t["from"]][1] * t["transfer_s"] for t in request["transfers"] if t["from"] != t["to"]
    )
    return compute + sent


def test_deploy_then_run_writes_results(tmp_path: Path) -> None:
    model = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(model))[1].block_names
    half = len(blocks) // 2
    plan = write_plan(
        tmp_path / "plan.json",
        model,
        {b: "device" if i < half else "edge" for i, b in enumerate(blocks)},
    )
    with running_agents("device", "edge") as agents:
        infra = write_infra(tmp_path / "infra.yaml", agents)
        runner = CliRunner()
        common = ["--infra", str(infra), "--model", str(model)]
        deployed = runner.invoke(app, ["deploy", str(plan), *common])
        assert deployed.exit_code == 0, deployed.output
        assert "c0_device" in deployed.output
        out = tmp_path / "results.json"
        ran = runner.invoke(
            app,
            [
                *("run", str(plan), *common, "--random", "3", "--concurrency", "2"),
                *("--out", str(out), "--save-outputs", str(tmp_path / "outputs")),
            ],
        )
        assert ran.exit_code == 0, ran.output
        assert "device energy" in ran.output
    saved = sorted((tmp_path / "outputs").iterdir())
    assert [p.name for p in saved] == ["000000.npz", "000001.npz", "000002.npz"]
    with np.load(saved[2]) as outputs:
        assert sorted(outputs.files) == ["out", "skip"] and outputs["out"].shape == (1, 5)
    results = read_json(out, "runtime-results", (1,))
    summary = results["summary"]
    assert summary["requests"] == 3 and summary["failed"] == 0
    assert {(lk["from"], lk["to"]) for lk in summary["links"]} >= {("device", "edge")}
    assert set(summary["compute_s_per_node"]) == {"device", "edge"}
    assert results["predicted"] == PREDICTED
    for request in results["requests"]:
        assert request["energy_j"] == pytest.approx(cost_model_energy(request), rel=1e-9)
        assert 0 < request["device_energy_j"] < request["energy_j"]
    energies = sorted(r["energy_j"] for r in results["requests"])
    assert summary["energy_j"]["median"] == pytest.approx(energies[1])
    assert summary["vs_predicted"]["energy_j"] == {
        "predicted": PREDICTED["energy_j"],
        "measured_median": summary["energy_j"]["median"],
    }


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # ORT's quantization tooling
def test_run_a_quantized_plan_on_a_folder_of_images(
    yolo11n_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    graph = analyze(str(yolo11n_path))[1]
    names = graph.block_names
    assignment = {b: "device" if i < 6 else "edge" for i, b in enumerate(names)}
    plan = write_plan(tmp_path / "plan.json", yolo11n_path, assignment, quantized=names[2:6])
    images = sample_images_dir()
    count = len([p for p in images.iterdir() if p.suffix == ".jpg"])
    assert count < len(list(images.iterdir())), "the folder also holds a non-image file"
    out = tmp_path / "results.json"
    with running_agents("device", "edge") as agents:
        infra = write_infra(tmp_path / "infra.yaml", agents)
        common = ["--infra", str(infra), "--model", str(yolo11n_path), "--calib", str(images)]
        ran = CliRunner().invoke(
            app, ["run", str(plan), *common, "--input", str(images), "--out", str(out)]
        )
        assert ran.exit_code == 0, ran.output
    summary = read_json(out, "runtime-results", (1,))["summary"]
    assert summary["requests"] == count and summary["failed"] == 0
    (link,) = [lk for lk in summary["links"] if (lk["from"], lk["to"]) == ("device", "edge")]
    crossing = [t for t in graph.tensors if t.producer in names[:6]]
    crossing = [t for t in crossing if any(assignment[c] == "edge" for c in t.consumers)]
    assert link["bytes_per_request"] == sum(t.bytes // 4 for t in crossing)  # int8 on the wire


def test_images_for_a_model_without_an_image_input_are_refused(tmp_path: Path) -> None:
    model = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(model))[1].block_names
    plan = write_plan(tmp_path / "plan.json", model, dict.fromkeys(blocks, "device"))
    with running_agents("device", "edge") as agents:
        infra = write_infra(tmp_path / "infra.yaml", agents)
        common = ["--infra", str(infra), "--model", str(model)]
        ran = CliRunner().invoke(app, ["run", str(plan), *common, "--input", str(tmp_path)])
    assert isinstance(ran.exception, InputError)
    assert ran.exception.field == "--input" and "1×C×H×W" in str(ran.exception)


def qsplit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qsplit", *args], capture_output=True, text=True, timeout=120
    )


RUN = ["run", "{plan}", "--infra", "{infra}", "--model"]


@pytest.mark.parametrize(
    ("command", "complaint"),
    [
        (["deploy", "{plan}", "--infra", "{infra}", "--model", "{tmp}/nope.onnx"], "not found"),
        ([*RUN, "{tmp}", "--random", "1"], "directory"),
        ([*RUN, "{model}", "--random", "0"], "--random"),
        ([*RUN, "{model}", "--random=-3"], "--random"),
        ([*RUN, "{model}", "--random", "1", "--timeout", "0"], "--timeout"),
        (["agent", "--name", "a", "--listen", "127.0.0.1:0", "--max-message-mb=-1"], "--max"),
        (["agent", "--name", "a", "--listen", "0.0.0.0:0", "--token", ""], "token is empty"),
    ],
    ids=[
        "missing-model",
        "model-is-a-folder",
        "random-0",
        "random-negative",
        "timeout-0",
        "mb",
        "empty-token",
    ],
)
def test_bad_cli_input_is_one_line_and_exit_2(tmp_path: Path, command, complaint) -> None:
    model = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(model))[1].block_names
    plan = write_plan(tmp_path / "plan.json", model, dict.fromkeys(blocks, "device"))
    nowhere = {n: AgentProcess(n, "127.0.0.1:9", None) for n in ("device", "edge")}  # type: ignore[arg-type]
    infra = write_infra(tmp_path / "infra.yaml", nowhere)
    paths = {"plan": plan, "infra": infra, "model": model, "tmp": tmp_path}
    done = qsplit(*(part.format(**paths) for part in command))
    assert done.returncode == 2 and complaint in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_run_exits_non_zero_and_counts_failed_requests(tmp_path: Path) -> None:
    model = synthetic.save(synthetic.failing_gather(), tmp_path / "failing.onnx")
    blocks = analyze(str(model))[1].block_names
    plan = write_plan(tmp_path / "plan.json", model, dict.fromkeys(blocks, "edge"))
    with running_agents("device", "edge") as agents:
        infra = write_infra(tmp_path / "infra.yaml", agents)
        common = ["--infra", str(infra), "--model", str(model), "--out", str(tmp_path / "r.json")]
        ran = qsplit("run", str(plan), *common, "--random", "3")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "3 of 3 requests failed" in ran.stderr and "Gather" in ran.stdout


def test_run_with_profiles_runs_each_component_in_its_profiled_time(tmp_path: Path) -> None:
    """``qsplit run --profiles``: a plan made from CLI profiles runs on an emulated node in the
    time those profiles give each component, as the demo's plans do (one profiling path)."""
    model = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    graph = analyze(str(model))[1]
    blocks = graph.block_names
    half = len(blocks) // 2
    assignment = {b: "device" if i < half else "edge" for i, b in enumerate(blocks)}
    plan = write_plan(tmp_path / "plan.json", model, assignment)
    for node in ("device", "edge"):
        timings = {b: BlockTiming(fp32_s=0.03) for b in blocks}
        profile = ComputeProfile(node, graph.model.sha256, graph.granularity, timings)
        profile.save(str(tmp_path / "profiles" / f"{node}.json"))
    with (
        running_agents("device", args=("--emulated",)) as device,
        running_agents("edge") as edge,
    ):
        infra = write_infra(tmp_path / "infra.yaml", {**device, **edge})
        out = tmp_path / "results.json"
        common = ["--infra", str(infra), "--model", str(model), "--out", str(out)]
        ran = CliRunner().invoke(
            app,
            ["run", str(plan), *common, "--random", "2", "--profiles", str(tmp_path / "profiles")],
        )
        assert ran.exit_code == 0, ran.output
    target = 0.03 * half
    for request in read_json(out, "runtime-results", (1,))["requests"]:
        runs = {r["node"]: r["compute_s"] for r in request["runs"]}
        assert target <= runs["device"] < target + 0.1
        assert runs["edge"] < 0.03 * (len(blocks) - half)  # a real node ignores the profile
