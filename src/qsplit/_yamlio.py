"""Reading the YAML files users write (infrastructure, fleets, model descriptions, schedules).

One reader, so that every such file fails the same way on what is not yet about its content: a
path that cannot be read, or text that is not YAML, named with the file and the line and column
where the parser stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qsplit.errors import InputError

SYNTAX_FIX = "fix the YAML syntax there (indentation, colons, quotes)"


def read_yaml(path: str | Path, *, fix: str = SYNTAX_FIX) -> Any:
    """The parsed document of ``path``; :class:`InputError` naming the file (and, for bad YAML,
    the position and ``fix``) when it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(
            f"cannot read the file ({exc.strerror})", file=path, fix="check the path"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"not valid YAML at {where}: {problem}", file=path, fix=fix) from None
