"""A host reference measured once and used again (``qsplit testbed calibrate --out FILE``,
``qsplit testbed up --host-reference FILE``).

Measuring this host (:func:`qsplit.profile.measure_host`) takes 10-25 s on a 2-core VM, and
every ``testbed up`` paid it: a test session that starts a dozen testbeds, or a user who starts
one repeatedly on the same machine, measured the same number a dozen times. A file keeps it, and
is refused where it would emulate wrongly: measured for another reference model, with another
statistic or thread count than the agents that will be padded by it, on another machine, or
without the whole runs the headroom check needs. What it cannot know is whether the load on the
machine changed since; ``up`` shows when it was measured.
"""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qsplit.errors import InputError
from qsplit.profile._emulation import REFERENCE_WORKLOAD, HostReference
from qsplit.profile._timing import Statistic

KIND = "host-reference"
SCHEMA_VERSION = 1


def save_host_reference(host: HostReference, path: str | Path) -> None:
    """Write ``host`` to ``path`` with what :func:`load_host_reference` checks it against."""
    data = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "workload": REFERENCE_WORKLOAD,
        "model_sha256": _reference_model_sha256(),
        "hostname": socket.gethostname(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reference": host.to_dict(),
    }
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def load_host_reference(
    path: str | Path, *, statistic: Statistic, threads: int
) -> tuple[HostReference, str]:
    """The host reference in ``path`` and when it was measured (ISO 8601, UTC), if it was
    measured here, for the bundled reference model, by ``statistic`` with ``threads``
    threads, whole runs included; otherwise :class:`InputError` naming the field and the fix."""
    fix = f"measure this host again: qsplit testbed calibrate --infra FILE --out {path}"
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read a host reference: {exc}", file=path, fix=fix) from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise InputError("not a host reference file", file=path, field="kind", fix=fix)
    if data.get("schema_version") != SCHEMA_VERSION:
        problem = f"schema version {data.get('schema_version')!r}, this qsplit reads 1"
        raise InputError(problem, file=path, field="schema_version", fix=fix)
    expected: dict[str, Any] = {
        "model_sha256": _reference_model_sha256(),
        "hostname": socket.gethostname(),
    }
    for field, want in expected.items():
        if data.get(field) != want:
            problem = f"measured for {data.get(field)!r}, this is {want!r}"
            raise InputError(problem, file=path, field=field, fix=fix)
    try:
        host = HostReference.from_dict(data["reference"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"malformed: {exc}", file=path, field="reference", fix=fix) from None
    for field, have, want in (
        ("statistic", host.statistic, statistic),
        ("threads", host.threads, threads),
    ):
        if have != want:
            problem = f"measured with {field} {have!r}, the testbed's agents use {want!r}"
            raise InputError(problem, file=path, field=f"reference.{field}", fix=fix)
    if host.whole_s is None:
        problem = "has no whole runs of the reference model, which the headroom check needs"
        raise InputError(problem, file=path, field="reference.whole_s", fix=fix)
    return host, str(data.get("measured_at"))


def _reference_model_sha256() -> str:
    from qsplit.assets import bundled_model_path

    return hashlib.sha256(bundled_model_path("yolo11n").read_bytes()).hexdigest()
