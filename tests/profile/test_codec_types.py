"""Codec times and compression tables: round trips, older files, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qsplit.errors import InputError, SchemaError
from qsplit.profile import (
    BlockTiming,
    CodecCost,
    CodecTimes,
    CompressionTable,
    ComputeProfile,
    scale_profile,
)


def _codec() -> CodecTimes:
    return CodecTimes(
        encode={"cast16": CodecCost(1e-5, 2e-10), "lz4": CodecCost(2e-5, 1e-9)},
        decode={"cast16": CodecCost(1e-5, 3e-10), "lz4": CodecCost(1e-5, 4e-10)},
    )


def _profile(codec: CodecTimes | None) -> ComputeProfile:
    return ComputeProfile(
        "edge",
        "abc",
        "block",
        {"b0": BlockTiming(0.01, 0.005)},
        {"host_reference_s": 0.5},
        codec,
    )


def test_codec_times_round_trip_in_the_compute_profile(tmp_path: Path) -> None:
    profile = _profile(_codec())
    profile.save(str(tmp_path / "p.json"))
    loaded = ComputeProfile.load(str(tmp_path / "p.json"))
    assert loaded == profile
    assert loaded.codec is not None and loaded.codec.supports("lz4")
    assert not loaded.codec.supports("zstd")
    assert loaded.codec.encode["lz4"].seconds(1000) == pytest.approx(2e-5 + 1e-6)


def test_a_profile_without_codec_times_loads_and_writes_none(tmp_path: Path) -> None:
    _profile(None).save(str(tmp_path / "old.json"))
    assert "codec" not in json.loads((tmp_path / "old.json").read_text())
    assert ComputeProfile.load(str(tmp_path / "old.json")).codec is None


def test_scaling_a_shipped_profile_scales_its_codec_times() -> None:
    scaled = scale_profile(_profile(_codec()), "slow", 1.0, source="x.json")
    assert scaled.codec is not None
    assert scaled.codec.decode["lz4"].per_byte_s == pytest.approx(8e-10)
    assert scaled.codec.encode["cast16"].fixed_s == pytest.approx(2e-5)


def test_unknown_codec_operation_is_refused() -> None:
    with pytest.raises(InputError, match=r"brotli.*cast16, int8, lz4, zstd"):
        CodecTimes(encode={"brotli": CodecCost(0, 0)}, decode={})


def test_compression_table_round_trip(tmp_path: Path) -> None:
    table = CompressionTable(
        "abc",
        {("t0", "int8", "lz4"): 0.4, ("t0", "fp32", "zstd"): 0.9},
        {"lz4": "4.4.5"},
    )
    table.save(tmp_path / "c.json")
    loaded = CompressionTable.load(tmp_path / "c.json")
    assert loaded == table
    assert loaded.ratio("t0", "int8", "lz4") == 0.4
    assert loaded.ratio("t0", "int8", "none") == 1.0
    assert loaded.ratio("t0", "fp16", "lz4") is None
    _profile(None).save(str(tmp_path / "p.json"))
    with pytest.raises(SchemaError, match="compression"):
        CompressionTable.load(tmp_path / "p.json")
