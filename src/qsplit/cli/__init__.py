"""The ``qsplit`` command line: parse, call one library function, render.

Each command group lives in its own ``*_cmd`` module and registers itself on :data:`app` when
imported here.
"""

from qsplit.cli import (  # noqa: F401  (imported to register their commands)
    analyze_cmd,
    demo_cmd,
    fleet_cmd,
    fleet_demo_cmd,
    fleet_serve_cmd,
    keys_cmd,
    model_cmd,
    noise_cmd,
    pareto_cmd,
    plan_cmd,
    profile_cmd,
    prototype_cmd,
    report_cmd,
    runtime_cmd,
    split_cmd,
    testbed_cmd,
)
from qsplit.cli._app import app, main

__all__ = ["app", "main"]
