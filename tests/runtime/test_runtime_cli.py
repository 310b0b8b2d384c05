"""``qsplit deploy`` and ``qsplit run`` against real agents, from a plan file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from typer.testing import CliRunner

import synthetic
from agents import running_agents
from qsplit._jsonio import read_json, write_json
from qsplit.cli import app
from qsplit.model import analyze


def write_plan(path: Path, model: Path, assignment: dict[str, str]) -> Path:
    """A minimal plan file: what the runtime reads is the model hash and the assignment."""
    predicted = {"latency_s": 0.0, "energy_j": 0.0, "device_energy_j": 0.0, "noise": 0.0}
    body = {
        "model": {"sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
        "assignment": assignment,
        "quantized": [],
        "components": [],
        "predicted": predicted,
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
        nodes = [
            {
                "name": n,
                "role": n,
                "compute_power_w": 1,
                "transmit_power_w": 1,
                "memory_bytes": "1GiB",
                "address": a.address,
            }
            for n, a in agents.items()
        ]
        links = [
            {"from": "device", "to": "edge", "bandwidth": "10MB/s", "latency": "1ms"},
            {"from": "edge", "to": "device", "bandwidth": "10MB/s", "latency": "1ms"},
        ]
        infra = tmp_path / "infra.yaml"
        infra.write_text(
            yaml.safe_dump(
                {"schema_version": 1, "device": "device", "nodes": nodes, "links": links}
            )
        )
        runner = CliRunner()
        common = ["--infra", str(infra), "--model", str(model)]
        deployed = runner.invoke(app, ["deploy", str(plan), *common])
        assert deployed.exit_code == 0, deployed.output
        assert "c0_device" in deployed.output
        out = tmp_path / "results.json"
        ran = runner.invoke(
            app,
            ["run", str(plan), *common, "--random", "3", "--concurrency", "2", "--out", str(out)],
        )
        assert ran.exit_code == 0, ran.output
    results = read_json(out, "runtime-results", (1,))
    assert results["summary"]["requests"] == 3 and results["summary"]["failed"] == 0
    assert {(lk["from"], lk["to"]) for lk in results["summary"]["links"]} >= {("device", "edge")}
    assert set(results["summary"]["compute_s_per_node"]) == {"device", "edge"}
