"""Number and status formatting shared by the CLI's tables and summaries."""

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


def status_text(status: str, gap: float | None, time_limit_s: float | None) -> str:
    """``optimal, gap 0``, or a warning that the time limit cut the solves short."""
    shown = "unknown" if gap is None else f"{gap:.2%}" if gap >= 1e-4 else f"{gap:.2g}"
    if status != "time-limit":
        return f"{status}, gap {shown}"
    limit = "" if time_limit_s is None else f" ({time_limit_s:g} s)"
    return (
        f"[bold yellow]stopped at the time limit{limit}[/]: the best plan found, gap {shown} "
        "(--time-limit gives it more)"
    )
