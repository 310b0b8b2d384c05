"""A saved host reference (``qsplit testbed calibrate --out``) is read back only where it
emulates right: this host, the bundled reference model, the agents' statistic and threads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qsplit.errors import InputError
from qsplit.profile import HostReference, load_host_reference, save_host_reference

HOST = HostReference(time_s=0.125, statistic="min", runs=20, threads=1, blocks=34, whole_s=0.13)


def _load(path: Path) -> tuple[HostReference, str]:
    return load_host_reference(path, statistic="min", threads=1)


def test_a_saved_reference_reads_back_with_when_it_was_measured(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    save_host_reference(HOST, path)
    host, measured_at = _load(path)
    assert host == HOST
    assert measured_at == json.loads(path.read_text())["measured_at"]
    assert measured_at.endswith("+00:00")


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = keys
        for key in parents:
            data = data[key]
        data[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set("kind", value="compute-profile"), "kind: not a host reference file"),
        (_set("schema_version", value=2), "schema_version: schema version 2"),
        (_set("model_sha256", value="0" * 64), "model_sha256: measured for '000"),
        (_set("hostname", value="elsewhere"), "hostname: measured for 'elsewhere'"),
        (_set("reference", "statistic", value="median"), "reference.statistic: measured with"),
        (_set("reference", "threads", value=2), "reference.threads: measured with threads 2"),
        (_set("reference", "whole_s", value=None), "reference.whole_s: has no whole runs"),
        (_set("reference", "extra", value=1), "reference: malformed"),
    ],
)
def test_a_foreign_or_stale_reference_is_refused(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    path = tmp_path / "host.json"
    save_host_reference(HOST, path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        _load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {expected}")
    assert f"Fix: measure this host again: qsplit testbed calibrate --infra FILE --out {path}" in (
        message
    )


def test_an_unreadable_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match=r"host.json: cannot read a host reference"):
        _load(path)
