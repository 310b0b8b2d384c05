"""Reports: what an experiment predicted and measured, as tables, figures and a Markdown file."""

from qsplit.report._fig_fleet import plot_fleet
from qsplit.report._fig_timeline import plot_timelines
from qsplit.report._fleet import (
    FLEET_TOLERANCE,
    ClassResult,
    FleetResult,
    NodeResult,
    Quantity,
    Versus,
    compare_fleet,
    relative_error,
    validation_rows,
    versus,
)
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
    "FLEET_TOLERANCE",
    "RUN_FILE",
    "TARGET_MAPE_PCT",
    "ClassResult",
    "Costs",
    "Entry",
    "EntryKind",
    "ErrorStats",
    "FleetResult",
    "Gain",
    "LoadedRun",
    "Measured",
    "NodeResult",
    "Phase",
    "PhaseRow",
    "Quantity",
    "Report",
    "RunIndex",
    "Scenario",
    "ScenarioValidation",
    "Timeline",
    "TimelinePoint",
    "Validation",
    "Versus",
    "build_report",
    "compare_fleet",
    "load_run",
    "phase_rows",
    "phase_table",
    "phases",
    "plot_fleet",
    "plot_timelines",
    "relative_error",
    "summary_rows",
    "validate",
    "validation_rows",
    "versus",
    "write_report",
]
