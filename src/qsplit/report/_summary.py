"""The report's verdict in words and numbers: prediction error against the target, and gains.

Shared by ``report.md``/``report.html`` and the ``qsplit report`` console table, so the three
say the same thing. A missed target is stated plainly, never left for the reader to infer.
"""

from __future__ import annotations

from qsplit.report._format import percent, seconds, speedup
from qsplit.report._load import LoadedRun
from qsplit.report._validation import ErrorStats, Gain, Validation


def model_line(run: LoadedRun) -> str:
    """'yolo11n.onnx (sha256 0123456789ab…), 34 blocks at block granularity'."""
    graph = run.graph
    return (
        f"{graph.model.path} (sha256 {graph.model.sha256[:12]}…), "
        f"{len(graph.blocks)} blocks at {graph.granularity} granularity"
    )


def error_sentence(
    quantity: str, stats: ErrorStats, run: LoadedRun, target_pct: float | None
) -> str:
    """How far predictions of ``quantity`` were off, and whether that meets the target (if
    ``quantity`` has one)."""
    if stats.mape_pct is None or stats.worst_entry is None:
        return f"{quantity}: no entry was measured, so the prediction error is unknown."
    verdict = (
        ""
        if target_pct is None
        else f"; target ≤ {target_pct:g} %: {'met' if stats.meets_target else 'MISSED'}"
    )
    return (
        f"{quantity}: predictions are off by {percent(stats.mape_pct)} on average "
        f"(MAPE over {stats.count} measured entries{verdict}); "
        f"worst: {_describe(run, stats.worst_entry)} at "
        f"{percent(stats.worst_error_pct, signed=True)}."
    )


def missed_targets(validation: Validation) -> list[str]:
    """One plain sentence per quantity whose MAPE is above the target."""
    return [
        f"Target missed: {quantity} MAPE is {percent(stats.mape_pct)}, above the "
        f"{validation.target_mape_pct:g} % target."
        for quantity, stats in (("latency", validation.latency), ("energy", validation.energy))
        if stats.meets_target is False
    ]


def gain_sentences(run: LoadedRun, validation: Validation) -> list[str]:
    """Per scenario, the fastest measured entry against device-only; then quantization alone
    where a scenario measured it (said once if none did)."""
    fastest = [
        f"{s.name}, fastest measured: {_gain_text(run, s.best)}"
        if s.best is not None
        else f"{s.name}: no measured fp32 entry runs every block on {s.device}, so no gain "
        "against device-only can be given."
        for s in validation.scenarios
    ]
    quantization = [
        f"{s.name}, quantization alone on {s.device}: {_gain_text(run, s.quantization_only)}"
        for s in validation.scenarios
        if s.quantization_only is not None
    ]
    return fastest + (
        quantization
        or [
            "No measured entry quantizes blocks while keeping every block on the device, so "
            "the gain of quantization alone is not measured in this run."
        ]
    )


def summary_rows(run: LoadedRun, validation: Validation) -> list[tuple[str, str]]:
    """The headline numbers as (item, value) rows, for tables."""
    target = f"target ≤ {validation.target_mape_pct:g} %"
    rows = [
        ("model", model_line(run)),
        ("latency MAPE", _mape_cell(validation.latency, target)),
        ("energy MAPE", _mape_cell(validation.energy, target)),
        (
            "quantization noise MAPE",
            f"{_mape(validation.noise)} over {validation.noise.count} quantized entries",
        ),
    ]
    dilation = run_dilation(run)
    if dilation != 1:
        rows.append(
            ("time dilation", f"{dilation:g}× (times as run; ÷ {dilation:g} for the scenario's)")
        )
    for s in validation.scenarios:
        rows.append((f"{s.name}: latency / energy MAPE", f"{_mape(s.latency)} / {_mape(s.energy)}"))
        rows.append((f"{s.name}: fastest vs device-only", _gain_cell(run, s.best)))
        rows.append((f"{s.name}: quantization alone", _gain_cell(run, s.quantization_only)))
    return rows


def run_dilation(run: LoadedRun) -> float:
    """The run's time dilation (``qsplit demo --dilation``; 1 for runs without one): its
    predicted and measured times are this many times the scenario's."""
    value = (run.index.settings or {}).get("dilation", 1.0)
    return float(value) if isinstance(value, int | float) else 1.0


def _describe(run: LoadedRun, entry_id: str) -> str:
    entry = run.entry(entry_id)
    return f"{entry.label} ({entry.scenario})"


def _gain_text(run: LoadedRun, gain: Gain) -> str:
    return (
        f"{run.entry(gain.entry).label} took {seconds(gain.latency_s)} against "
        f"{seconds(gain.reference_latency_s)} for {run.entry(gain.reference_entry).label}: "
        f"{speedup(gain.speedup)} ({percent(gain.reduction_pct)} less latency)."
    )


def _mape(stats: ErrorStats) -> str:
    return "not measured" if stats.mape_pct is None else percent(stats.mape_pct)


def _mape_cell(stats: ErrorStats, target: str) -> str:
    verdict = {True: "met", False: "MISSED", None: "unknown"}[stats.meets_target]
    return f"{_mape(stats)} over {stats.count} entries ({target}: {verdict})"


def _gain_cell(run: LoadedRun, gain: Gain | None) -> str:
    if gain is None:
        return "–"
    label = run.entry(gain.entry).label
    return f"{speedup(gain.speedup)} ({percent(gain.reduction_pct)} less), {label}"
