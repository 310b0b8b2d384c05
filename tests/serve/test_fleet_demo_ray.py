"""``qsplit fleet demo`` end to end on the session's embedded Ray: a 4-device fleet, every
configuration run for a few seconds, the results file and the figures written (no timing
asserted)."""

from __future__ import annotations

import json
from collections.abc import Callable
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
RATES = {"rate_hz: 0.06": "rate_hz: 0.24", "rate_hz: 0.1": "rate_hz: 0.4"}
"""The example's rates × 4: its 4 devices (2 cameras, 2 phones) then send 1.3 requests/s, so
the 6 s window holds 5 of the seeded requests, of both classes (at the example's rates, none:
why a short window used to come out empty). Higher rates would hold more, but the cameras'
own compute (6 s) then queues longer on device-only, and the run waits for those requests."""


def busier_example(folder: Path) -> Path:
    text = EXAMPLE.read_text()
    for old, new in RATES.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = folder / "fleet-busy.yaml"
    path.write_text(text)
    return path


def test_fleet_demo_runs_every_configuration_on_ray(
    tmp_path: Path, embedded_ray: Callable[[], str]
) -> None:
    embedded_ray()
    out = tmp_path / "fleet"
    result = CliRunner().invoke(
        app,
        [
            "fleet",
            "demo",
            str(busier_example(tmp_path)),
            "--devices",
            "4",
            "--duration",
            "6",
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
    assert all(sent.values()), sent
    for configuration in document["configurations"]:
        assert configuration["failed"] == 0, configuration["label"]
    device_only = next(c for c in document["configurations"] if c["label"] == "device-only")
    assert all(n["utilisation"]["measured"] == 0 for n in device_only["nodes"])
    for figure in document["figures"]:
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    assert "Queueing model" in result.output and "fleet plan vs alone" in result.output
