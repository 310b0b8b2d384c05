"""Number formatting shared by the CLI's tables."""

from __future__ import annotations


def human_count(n: float) -> str:
    """1234567 → '1.23 M' (SI prefixes, for MACs and counts)."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {suffix}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    """Bytes with binary prefixes: 4915200 → '4.69 MiB'."""
    for factor, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {suffix}"
    return f"{n:.0f} B"
