"""The per-scenario table: one row per entry, prediction beside measurement."""

from __future__ import annotations

from qsplit.report._document import Table
from qsplit.report._format import joules, percent, placement, seconds, speedup
from qsplit.report._load import LoadedRun
from qsplit.report._rundir import Entry
from qsplit.report._validation import ScenarioValidation, energy_pair, latency_pair, percent_error

HEADER = (
    "entry",
    "kind",
    "blocks run on",
    "int8 blocks",
    "links",
    "latency pred.",
    "latency meas.",
    "latency error",
    "energy pred.",
    "energy meas.",
    "energy error",
    "device energy pred. / meas.",
    "noise pred. / meas.",
    "vs device-only",
)


def scenario_table(run: LoadedRun, scenario: ScenarioValidation) -> Table:
    """Every entry of ``scenario``; errors are signed (positive: predicted too high)."""
    reference = None if scenario.best is None else scenario.best.reference_latency_s
    rows = tuple(
        _row(run, entry, reference)
        for entry in run.index.entries
        if entry.scenario == scenario.name
    )
    return Table(HEADER, rows, right_aligned=frozenset({3, *range(5, len(HEADER))}))


def _row(run: LoadedRun, entry: Entry, reference_latency_s: float | None) -> tuple[str, ...]:
    measured = entry.measured
    gain = (
        speedup(reference_latency_s / measured.latency_s)
        if measured is not None and reference_latency_s is not None and measured.latency_s > 0
        else "–"
    )
    return (
        entry.label,
        entry.kind,
        placement(entry.assignment, run.graph.block_names),
        str(len(entry.quantized)),
        links(entry),
        seconds(entry.predicted.latency_s),
        seconds(None if measured is None else measured.latency_s),
        _error(latency_pair(entry)),
        joules(entry.predicted.energy_j),
        joules(None if measured is None else measured.energy_j),
        _error(energy_pair(entry)),
        f"{joules(entry.predicted.device_energy_j)} / "
        f"{joules(None if measured is None else measured.device_energy_j)}",
        _noise(entry),
        gain,
    )


def links(entry: Entry) -> str:
    """How many crossing tensors travel in each link mode other than plain fp32, e.g.
    ``fp16+lz4 ×2, lz4 ×1``; ``–`` when every one crosses as computed."""
    modes: dict[str, int] = {}
    for tensor in dict.fromkeys([*entry.link_precision, *entry.link_codec]):
        parts = [entry.link_precision.get(tensor), entry.link_codec.get(tensor)]
        mode = "+".join(p for p in parts if p)
        modes[mode] = modes.get(mode, 0) + 1
    return ", ".join(f"{m} ×{n}" for m, n in sorted(modes.items())) or "–"


def _noise(entry: Entry) -> str:
    if not (entry.quantized or entry.link_precision):
        return "–"
    measured = None if entry.measured is None else entry.measured.noise
    return f"{entry.noise:.3g} / {'–' if measured is None else f'{measured:.3g}'}"


def _error(pair: tuple[float, float] | None) -> str:
    return percent(None if pair is None else percent_error(*pair), signed=True)
