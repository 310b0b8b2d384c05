"""Reports: what an experiment predicted and measured, as tables, figures and a Markdown file."""

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
    "Report",
    "RunIndex",
    "Scenario",
    "ScenarioValidation",
    "Validation",
    "build_report",
    "load_run",
    "summary_rows",
    "validate",
    "write_report",
]
