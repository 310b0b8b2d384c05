"""Reports: what an experiment predicted and measured, as tables, figures and a Markdown file."""

from qsplit.report._fig_timeline import plot_timelines
from qsplit.report._load import LoadedRun, load_run
from qsplit.report._rundir import (
    RUN_FILE,
    Costs,
    Entry,
    EntryKind,
    Measured,
    RunIndex,
    Scenario,
)
from qsplit.report._summary import summary_rows
from qsplit.report._timeline import (
    Phase,
    PhaseRow,
    Timeline,
    TimelinePoint,
    phase_rows,
    phase_table,
    phases,
)
from qsplit.report._validation import (
    TARGET_MAPE_PCT,
    ErrorStats,
    Gain,
    ScenarioValidation,
    Validation,
    validate,
)
from qsplit.report._write import Report, build_report, write_report

__all__ = [
    "RUN_FILE",
    "TARGET_MAPE_PCT",
    "Costs",
    "Entry",
    "EntryKind",
    "ErrorStats",
    "Gain",
    "LoadedRun",
    "Measured",
    "Phase",
    "PhaseRow",
    "Report",
    "RunIndex",
    "Scenario",
    "ScenarioValidation",
    "Timeline",
    "TimelinePoint",
    "Validation",
    "build_report",
    "load_run",
    "phase_rows",
    "phase_table",
    "phases",
    "plot_timelines",
    "summary_rows",
    "validate",
    "write_report",
]
