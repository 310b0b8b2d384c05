"""``qsplit demo``: the whole pipeline on the local testbed, written to a run directory.

``run_demo(DemoConfig(out=Path("runs/demo")))`` starts the testbed, profiles every node through
its agent, measures the links, fits the noise model, plans every scenario, runs every plan and
baseline, and writes ``run.json`` for :mod:`qsplit.report`. See docs/demo.md.
"""

from qsplit.demo._config import DemoConfig, ScenarioSpec, default_scenarios
from qsplit.demo._pipeline import Progress, run_demo

__all__ = ["DemoConfig", "Progress", "ScenarioSpec", "default_scenarios", "run_demo"]
