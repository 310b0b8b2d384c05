"""Reading a block→node assignment from a file, and checking it against the known nodes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from qsplit.errors import AssignmentError


def read_assignment(path: str | Path) -> dict[str, str]:
    """Read ``{block: node}`` from YAML/JSON, or the ``assignment`` of a plan file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise AssignmentError(
            f"cannot read it ({exc.strerror})", file=path, fix="check the path"
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise AssignmentError(
            f"not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({exc})".replace("\n", " "),
            file=path,
            fix="write a mapping of block name to node name",
        ) from None
    if isinstance(data, dict) and isinstance(data.get("assignment"), dict):
        data = data["assignment"]  # a plan file
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise AssignmentError(
            "expected a mapping of block name to node name",
            file=path,
            fix="write lines like `model.0: device`, or pass a plan.json",
        )
    return dict(data)


def check_nodes(
    assignment: Mapping[str, str], nodes: Iterable[str], *, source: str | Path | None = None
) -> None:
    """Raise :class:`AssignmentError` if the assignment names a node that does not exist."""
    known = list(nodes)
    unknown = sorted({n for n in assignment.values() if n not in known})
    if unknown:
        first = next(b for b, n in assignment.items() if n == unknown[0])
        raise AssignmentError(
            f"unknown node(s) {', '.join(map(repr, unknown))} (block {first!r})",
            file=source,
            field="assignment",
            fix=f"use one of the nodes {', '.join(known)}",
        )
