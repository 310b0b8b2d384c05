"""Timing statistics: the median for machines as they are, the minimum for emulated nodes."""

from __future__ import annotations

import pytest

from qsplit.profile import STATISTICS, Summary


def test_summary_reports_each_statistic() -> None:
    summary = Summary.of([0.030, 0.010, 0.020, 0.050])
    assert summary.value("median") == pytest.approx(0.025)
    assert summary.value("min") == pytest.approx(0.010)
    assert set(STATISTICS) == {"median", "min"}


def test_one_sample_is_every_statistic() -> None:
    summary = Summary.of([0.02])
    assert summary.value("median") == summary.value("min") == 0.02
    assert summary.spread_s == 0.0
