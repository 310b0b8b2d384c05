"""Reports: what an experiment predicted and measured, as tables, figures and a Markdown file."""

from qsplit.report._rundir import (
    RUN_FILE,
    Costs,
    Entry,
    EntryKind,
    Measured,
    RunIndex,
    Scenario,
)

__all__ = ["RUN_FILE", "Costs", "Entry", "EntryKind", "Measured", "RunIndex", "Scenario"]
