"""``qsplit run --adapt``: the run's results file lists the decisions, the plans and which plan
answered each request, beside the observed links."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from helpers import branchy, problem
from typer.testing import CliRunner

from agents import running_agents
from qsplit.cli import app
from qsplit.errors import InputError
from qsplit.infra import load_infra
from qsplit.plan import plan

PER_BLOCK_S = {"device": 0.01, "edge": 0.001}


def _infra(path: Path, addresses: dict[str, str]) -> Path:
    nodes = [
        {
            "name": name,
            "role": name,
            "compute_power_w": 3.0,
            "transmit_power_w": 3.0,
            "memory_bytes": "1GiB",
            "address": address,
        }
        for name, address in addresses.items()
    ]
    links = [
        {"from": a, "to": b, "bandwidth": "50MB/s", "latency": "1ms"}
        for a, b in (("device", "edge"), ("edge", "device"))
    ]
    document = {"schema_version": 1, "device": "device", "nodes": nodes, "links": links}
    path.write_text(yaml.safe_dump(document))
    return path


def test_run_adapt_writes_decisions_plans_and_observations(tmp_path: Path) -> None:
    case = branchy(tmp_path, 1)
    graph_path = tmp_path / "graph.json"
    case.graph.save(str(graph_path))
    with running_agents("device", "edge", args=("--emulated",)) as agents:
        infra_path = _infra(tmp_path / "infra.yaml", {n: a.address for n, a in agents.items()})
        planning = problem(case.graph, load_infra(infra_path), PER_BLOCK_S)
        (tmp_path / "profiles").mkdir()
        for node, profile in planning.profiles.items():
            profile.save(str(tmp_path / "profiles" / f"{node}.json"))
        plan(planning).save(tmp_path / "plan.json")
        out = tmp_path / "results.json"
        common = [
            *("run", str(tmp_path / "plan.json"), "--infra", str(infra_path)),
            *("--model", str(case.path), "--random", "4", "--out", str(out)),
        ]
        refused = CliRunner().invoke(app, [*common, "--adapt"])
        assert isinstance(refused.exception, InputError)
        assert refused.exception.field == "--graph"
        ran = CliRunner().invoke(
            app,
            [
                *common,
                *("--adapt", "--graph", str(graph_path), "--profiles", str(tmp_path / "profiles")),
                *("--replan-margin", "0.5", "--replan-min-interval", "1"),
            ],
        )
        assert ran.exit_code == 0, ran.output
    results = json.loads(out.read_text())
    adapt = results["adapt"]
    assert adapt["policy"]["margin"] == 0.5 and adapt["policy"]["min_interval_s"] == 1.0
    assert len(adapt["request_plans"]) == 4
    first = adapt["request_plans"][0]
    assert set(adapt["plans"][first]["assignment"].values()) == {"edge"}
    assert adapt["decisions"] == []  # nothing changed: nothing to decide
    (uplink,) = [lk for lk in results["observed"]["links"] if lk["from"] == "device"]
    assert uplink["samples"] == 4
