"""Open a run directory for reporting, refusing it early and clearly when it is incomplete.

A report is rebuilt from the saved files alone, possibly long after the run and on another
machine, so a missing or foreign file must be named with what to do about it rather than
surface later as a ``KeyError`` or a broken image link.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from qsplit.errors import InputError, SchemaError
from qsplit.infra import Infra, load_infra
from qsplit.model import LayerGraph
from qsplit.report._rundir import RUN_FILE, Entry, EntryKind, RunIndex

_REGENERATE = "rerun `qsplit demo` to write the run directory again"


@dataclass(frozen=True)
class LoadedRun:
    """A run directory's index with the files the report reads: block graph and infra files."""

    run_dir: Path
    index: RunIndex
    graph: LayerGraph
    infras: dict[str, Infra]
    """Scenario name → its infrastructure."""

    @property
    def devices(self) -> dict[str, str]:
        """Scenario name → its requesting (device) node."""
        return {name: infra.device for name, infra in self.infras.items()}

    def entry(self, entry_id: str) -> Entry:
        """The entry called ``entry_id`` (ids come from the index itself)."""
        return next(e for e in self.index.entries if e.id == entry_id)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read ``run.json`` and everything it references; :class:`InputError` names what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(
            "not a directory", file=run_dir, fix="pass the run directory `qsplit demo` wrote"
        )
    index_path = run_dir / RUN_FILE
    if not index_path.is_file():
        raise InputError(
            f"no {RUN_FILE} in this directory",
            file=run_dir,
            fix=f"pass the directory `qsplit demo` wrote (the one that holds {RUN_FILE})",
        )
    try:
        index = RunIndex.load(run_dir)
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(
            f"missing or malformed field ({exc!r})", file=index_path, fix=_REGENERATE
        ) from None
    for relative in referenced_files(index):
        if not (run_dir / relative).is_file():
            raise InputError(
                f"references {relative}, which is missing",
                file=index_path,
                fix=f"restore {run_dir / relative}, or {_REGENERATE}",
            )
    graph = LayerGraph.load(str(run_dir / index.layergraph))
    _check_entries(index, graph, index_path)
    infras = {s.name: load_infra(run_dir / s.infra) for s in index.scenarios}
    return LoadedRun(run_dir, index, graph, infras)


def referenced_files(index: RunIndex) -> list[str]:
    """Every relative path ``run.json`` names, in index order, without repeats."""
    paths = [
        index.layergraph,
        *index.profiles.values(),
        index.links,
        index.noise,
        *(s.infra for s in index.scenarios),
        *(p for e in index.entries for p in (e.plan, e.run)),
    ]
    return list(dict.fromkeys(p for p in paths if p is not None))


def _check_entries(index: RunIndex, graph: LayerGraph, index_path: Path) -> None:
    """Every entry must be of a known kind and scenario and place exactly the LayerGraph's
    blocks; the figures and tables rely on all three."""
    blocks = set(graph.block_names)
    scenarios = {s.name for s in index.scenarios}
    for entry in index.entries:
        unknown = (set(entry.assignment) | set(entry.quantized)) - blocks
        missing = blocks - set(entry.assignment)
        if entry.kind not in get_args(EntryKind):
            problem = f"has kind {entry.kind!r}, not one of {', '.join(get_args(EntryKind))}"
        elif entry.scenario not in scenarios:
            problem = f"belongs to scenario {entry.scenario!r}, which is not listed in scenarios"
        elif unknown:
            problem = f"names blocks not in {index.layergraph}: {', '.join(sorted(unknown))}"
        elif missing:
            problem = f"leaves {len(missing)} blocks unplaced, e.g. {sorted(missing)[0]}"
        else:
            continue
        raise SchemaError(
            f"entry {entry.id!r} {problem}", file=index_path, field="entries", fix=_REGENERATE
        )
