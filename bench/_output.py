"""How the reliability benchmarks hand over their result: JSON on stdout, and in a file on
request, so a run can be recorded in docs/BENCHMARKS.md as it was printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit_json(result: dict[str, Any], out: Path | None) -> None:
    """Print ``result`` as indented JSON and, when ``out`` is given, write the same text there."""
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.write_text(text + "\n")
