"""``qsplit report``: exit codes, and bad run directories refused with the file and the fix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qsplit.cli import main, report_cmd  # noqa: F401  (registers `report`)
from qsplit.errors import InputError, SchemaError
from qsplit.report import load_run

pytest_plugins = ["report_run"]


def _qsplit(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str):
    """Run the CLI in-process through its error boundary; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["qsplit", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def _edit_index(run_dir: Path, **changes: object) -> None:
    path = run_dir / "run.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_report_command_writes_the_report_and_prints_the_summary(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _qsplit(capsys, monkeypatch, "report", str(run_dir))
    assert code == 0
    assert "latency MAPE" in out and "MISSED" in out
    assert "report.md" in out
    assert (run_dir / "report" / "report.md").is_file()


def test_directory_without_run_json_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = _qsplit(capsys, monkeypatch, "report", str(tmp_path))
    assert code == 2
    assert f"{tmp_path}: no run.json in this directory" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "pareto"}, "expected a 'demo-run' file"),
        ({"schema_version": 99}, "schema_version 99 is not supported"),
        ({"entries": [{"id": "x"}]}, "missing or malformed field"),
    ],
)
def test_foreign_or_broken_run_json_is_a_schema_error(
    run_dir: Path, changes: dict[str, object], message: str
) -> None:
    _edit_index(run_dir, **changes)
    with pytest.raises(SchemaError, match=message) as error:
        load_run(run_dir)
    assert str(run_dir / "run.json") in str(error.value)
    assert "Fix:" in str(error.value)


def test_missing_referenced_file_is_named(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (run_dir / "runs" / "shared.json").unlink()
    code, _, err = _qsplit(capsys, monkeypatch, "report", str(run_dir))
    assert code == 2
    assert "references runs/shared.json, which is missing" in err
    assert "qsplit demo" in err


def test_missing_layergraph_and_infra_are_named(run_dir: Path) -> None:
    (run_dir / "scenarios" / "three-tier.yaml").unlink()
    with pytest.raises(InputError, match=r"scenarios/three-tier\.yaml, which is missing"):
        load_run(run_dir)
    (run_dir / "layergraph.json").unlink()
    with pytest.raises(InputError, match=r"references layergraph\.json"):
        load_run(run_dir)


def test_entry_placing_unknown_blocks_is_refused(run_dir: Path) -> None:
    data = json.loads((run_dir / "run.json").read_text())
    data["entries"][0]["assignment"]["no-such-block"] = "device"
    (run_dir / "run.json").write_text(json.dumps(data))
    with pytest.raises(SchemaError, match=r"names blocks not in layergraph\.json: no-such-block"):
        load_run(run_dir)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        load_run(tmp_path / "absent")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", "oracle", "has kind 'oracle', not one of plan, baseline"),
        ("scenario", "moon", "belongs to scenario 'moon', which is not listed"),
    ],
)
def test_entry_of_unknown_kind_or_scenario_is_refused(
    run_dir: Path, field: str, value: str, message: str
) -> None:
    data = json.loads((run_dir / "run.json").read_text())
    data["entries"][1][field] = value
    (run_dir / "run.json").write_text(json.dumps(data))
    with pytest.raises(SchemaError, match=message):
        load_run(run_dir)
