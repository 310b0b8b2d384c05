"""Fixtures: a small synthetic run directory with hand-made entries whose errors and gains are
known. Test modules load them with ``pytest_plugins = ["report_run"]`` (a ``conftest.py`` here
would shadow the top-level one that other tests import as ``conftest``).

Model: the synthetic branchy CNN (10 blocks). Two scenarios share the bundled three-tier infra
file: ``local`` (the device alone) and ``three-tier``. Signed latency errors, in %:
local-device-only −5, local-int8 +10, tt-device-only 0, tt-best-split +5, tt-plan −15
(MAPE 7.0, worst tt-plan); energy errors −20, +10, 0, +25, +20 (MAPE 15.0: target missed,
worst tt-best-split). tt-failed was not measured.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import synthetic
from qsplit.model import analyze
from qsplit.report import Costs, Entry, Measured, Report, RunIndex, Scenario, build_report

EXAMPLES = Path(__file__).parents[2] / "src" / "qsplit" / "examples"
INFRA = "scenarios/three-tier.yaml"


MEASURED_NOISE = {"local/int8": 0.016, "tt/plan": 0.025}
"""Both quantize 2 blocks, predicted 0.02: errors +25 % and −20 %."""


def _entry(
    entry_id: str,
    scenario: str,
    kind: str,
    nodes: list[str],
    quantized: tuple[str, ...],
    predicted: tuple[float, float],
    measured: tuple[float, float] | None,
    blocks: tuple[str, ...],
) -> Entry:
    """``nodes`` gives each block's node in order; costs are (latency s, energy J)."""
    return Entry(
        id=entry_id,
        scenario=scenario,
        kind=kind,  # type: ignore[arg-type]
        label=entry_id.replace("/", " "),
        assignment=dict(zip(blocks, nodes, strict=True)),
        quantized=quantized,
        noise=0.01 * len(quantized),
        predicted=Costs(predicted[0], predicted[1], predicted[1] / 2),
        measured=None
        if measured is None
        else Measured(
            measured[0],
            measured[1],
            measured[1] / 2,
            requests=20,
            max_abs_diff=None if quantized else 1e-6,
            noise=MEASURED_NOISE.get(entry_id),
        ),
        error=None if measured is not None else "agent edge crashed",
        run=None if measured is None else "runs/shared.json",
    )


def build_index(blocks: tuple[str, ...]) -> RunIndex:
    n = len(blocks)
    device, split = ["device"] * n, ["device"] * 2 + ["edge"] * (n - 2)
    spread = ["device"] * 2 + ["edge"] * 4 + ["cloud"] * (n - 6)
    entries = (
        _entry(
            "local/device-only", "local", "baseline", device, (), (0.95, 2.0), (1.0, 2.5), blocks
        ),
        _entry("local/int8", "local", "plan", device, blocks[:2], (0.55, 1.1), (0.5, 1.0), blocks),
        _entry(
            "tt/device-only", "three-tier", "baseline", device, (), (1.0, 2.5), (1.0, 2.5), blocks
        ),
        _entry(
            "tt/best-split", "three-tier", "baseline", split, (), (0.42, 1.0), (0.4, 0.8), blocks
        ),
        _entry(
            "tt/plan", "three-tier", "plan", spread, blocks[3:5], (0.17, 0.6), (0.2, 0.5), blocks
        ),
        _entry("tt/failed", "three-tier", "plan", split, blocks[:1], (0.3, 0.7), None, blocks),
    )
    return RunIndex(
        model={"path": "branchy.onnx", "sha256": "ab" * 32, "blocks": n, "macs": 1},
        layergraph="layergraph.json",
        profiles={"device": "profiles/device.json"},
        links=None,
        noise=None,
        scenarios=(
            Scenario("local", INFRA, ("device",)),
            Scenario("three-tier", INFRA, ("device", "edge", "cloud")),
        ),
        entries=entries,
        settings={"requests": 20, "machine": {"cpus": 2, "load": [1.5, 0.25]}, "total_s": 12.3456},
    )


def make_run_dir(root: Path) -> Path:
    """Write the run directory under ``root`` (no real profiles or run files: they are empty)."""
    model_path = synthetic.save(synthetic.branchy_cnn(), root / "branchy.onnx")
    _, graph = analyze(str(model_path))
    run = root / "run"
    graph.save(str(run / "layergraph.json"))
    (run / "scenarios").mkdir()
    shutil.copy(EXAMPLES / "three-tier.yaml", run / INFRA)
    for name in ("profiles/device.json", "runs/shared.json"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("{}\n")
    build_index(graph.block_names).save(run)
    return run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh run directory, for tests that change it."""
    return make_run_dir(tmp_path)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of a run directory, written once per module, for tests that only read it."""
    return build_report(make_run_dir(tmp_path_factory.mktemp("report")))
