"""Entries carry their plan's link modes through run.json, and the table counts them."""

from __future__ import annotations

from qsplit.report import Costs, Entry
from qsplit.report._tables import links


def entry(**fields: object) -> Entry:
    return Entry(
        id="s/plan",
        scenario="s",
        kind="plan",
        label="plan",
        assignment={"b0": "device", "b1": "edge"},
        quantized=(),
        noise=0.0,
        predicted=Costs(0.1, 1.0, 0.5),
        measured=None,
        **fields,  # type: ignore[arg-type]
    )


def test_link_modes_survive_run_json_and_older_entries_read_as_fp32() -> None:
    planned = entry(link_precision={"a": "fp16"}, link_codec={"a": "lz4", "c": "zstd"})
    assert Entry.from_dict(planned.to_dict()) == planned
    older = planned.to_dict()
    del older["link_precision"], older["link_codec"]
    assert Entry.from_dict(older) == entry()


def test_the_table_counts_tensors_per_link_mode() -> None:
    planned = entry(
        link_precision={"a": "fp16", "b": "fp16", "d": "int8"},
        link_codec={"a": "lz4", "c": "zstd"},
    )
    assert links(planned) == "fp16 ×1, fp16+lz4 ×1, int8 ×1, zstd ×1"
    assert links(entry()) == "–"
