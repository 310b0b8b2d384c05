"""Versioned JSON files: every file qsplit writes carries ``kind`` and ``schema_version``.

One helper pair so that each value object's ``save``/``load`` refuses a file of another kind or
an unknown version with a message that says how to fix it, instead of failing later on a
missing key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qsplit.errors import SchemaError


def write_json(path: str | Path, kind: str, schema_version: int, body: dict[str, Any]) -> Path:
    """Write ``body`` under a ``kind``/``schema_version`` header; parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"kind": kind, "schema_version": schema_version, **body}
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def read_json(path: str | Path, kind: str, supported_versions: tuple[int, ...]) -> dict[str, Any]:
    """Read a qsplit JSON file and check its header; raise :class:`SchemaError` on mismatch."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise SchemaError("file not found", file=path, fix="check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(
            f"not valid JSON ({exc})", file=path, fix=f"regenerate the {kind} file with qsplit"
        ) from None
    if not isinstance(document, dict):
        raise SchemaError("top level is not a JSON object", file=path, fix=f"pass a {kind} file")
    found_kind = document.get("kind")
    if found_kind != kind:
        raise SchemaError(
            f"expected a {kind!r} file, found kind {found_kind!r}",
            file=path,
            field="kind",
            fix=f"pass a {kind} file written by qsplit",
        )
    version = document.get("schema_version")
    if version not in supported_versions:
        raise SchemaError(
            f"schema_version {version!r} is not supported (this qsplit reads "
            f"{', '.join(map(str, supported_versions))})",
            file=path,
            field="schema_version",
            fix="regenerate the file with this version of qsplit",
        )
    return document
