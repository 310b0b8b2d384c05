"""``qsplit fleet demo`` end to end on an embedded Ray: a 4-device fleet, every configuration
run for a few seconds, the results file and the figures written (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qsplit
from qsplit.cli import app

pytest.importorskip("ray", reason="Ray is not installed (pip install 'qsplit[ray]')")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # a retried embedded Ray start leaves its processes to Ray's reaper (docs/serve.md)
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

EXAMPLE = Path(qsplit.__file__).parent / "examples" / "fleet-testbed.yaml"


def test_fleet_demo_runs_every_configuration_on_ray(tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    result = CliRunner().invoke(
        app,
        [
            "fleet",
            "demo",
            str(EXAMPLE),
            "--devices",
            "4",
            "--duration",
            "15",
            "--warmup",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "fleet-demo.json").read_text())
    labels = [c["label"] for c in document["configurations"]]
    assert labels[0] == "fleet" and {"alone", "cloud-only", "device-only"} <= set(labels)
    assert sum(document["devices"].values()) == 4
    sent = {c["label"]: c["sent"] for c in document["configurations"]}
    assert sum(sent.values()) > 0, sent
    for configuration in document["configurations"]:
        assert configuration["failed"] == 0, configuration["label"]
    device_only = next(c for c in document["configurations"] if c["label"] == "device-only")
    assert all(n["utilisation"]["measured"] == 0 for n in device_only["nodes"])
    for figure in document["figures"]:
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    assert "Queueing model" in result.output and "fleet plan vs alone" in result.output
