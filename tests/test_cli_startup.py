"""The command line starts without the plotting and fitting libraries.

Every ``python -m qsplit`` pays its imports: agents started by the testbed and the tests, and
each CLI test. matplotlib alone costs about 0.4 s of CPU, so it is imported where a figure is
drawn, never at start-up (ruff's TID253 bans module-level matplotlib imports; this test holds the
whole start-up path, which ruff cannot follow, to it).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LAZY = ("matplotlib", "sklearn", "scipy")
"""Libraries that only some commands use, and only once they run."""

_PROBE = """
import json, sys
from qsplit.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def loaded_after(*args: str) -> tuple[int, set[str]]:
    """Run the app with ``args`` in a fresh interpreter: its exit code and top-level modules."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    probe = json.loads(result.stdout.splitlines()[-1])
    return probe["code"], set(probe["modules"])


@pytest.mark.parametrize(
    "args",
    [("--help",), ("report", "--help"), ("agent", "--help"), ("fleet", "demo", "--help")],
)
def test_start_up_leaves_plotting_and_fitting_libraries_unloaded(args: tuple[str, ...]) -> None:
    code, modules = loaded_after(*args)
    assert code == 0
    assert "qsplit" in modules and "typer" in modules  # the probe did run the app
    assert modules.isdisjoint(LAZY), sorted(modules & set(LAZY))


def test_drawing_a_figure_does_load_matplotlib() -> None:
    """The probe can see a lazy import happen, so the test above is not vacuous."""
    probe = (
        "import sys; from qsplit.report._figstyle import new_figure; "
        "assert 'matplotlib' not in sys.modules; new_figure(1.0, 1.0); "
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "True"
