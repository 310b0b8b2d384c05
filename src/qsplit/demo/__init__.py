"""``qsplit demo``: the whole pipeline on the local testbed, written to a run directory.

``run_demo(DemoConfig(out=Path("runs/demo")))`` starts the testbed, profiles every node through
its agent, measures the links, fits the noise model, plans every scenario, runs every plan and
baseline, and writes ``run.json`` for :mod:`qsplit.report`. See docs/demo.md.
``run_adaptive_demo(AdaptiveConfig(out=...))`` is the adaptive scenario: a stream of requests
while the testbed's uplinks drop and a node dies, under three strategies (docs/testbed.md).
``run_fleet_demo(FleetDemoConfig(out=...))`` plans a fleet and runs the plan and its baselines
on an emulated fleet on Ray (docs/fleet.md).
"""

from qsplit.demo._adaptive import STRATEGIES, AdaptiveConfig, AdaptiveOutcome, run_adaptive_demo
from qsplit.demo._config import DemoConfig, ScenarioSpec, default_scenarios
from qsplit.demo._fleet import (
    FLEET_DEMO_FILE,
    FleetDemoConfig,
    FleetDemoOutcome,
    configurations,
    run_fleet_demo,
)
from qsplit.demo._pipeline import Progress, run_demo

__all__ = [
    "FLEET_DEMO_FILE",
    "STRATEGIES",
    "AdaptiveConfig",
    "AdaptiveOutcome",
    "DemoConfig",
    "FleetDemoConfig",
    "FleetDemoOutcome",
    "Progress",
    "ScenarioSpec",
    "configurations",
    "default_scenarios",
    "run_adaptive_demo",
    "run_demo",
    "run_fleet_demo",
]
