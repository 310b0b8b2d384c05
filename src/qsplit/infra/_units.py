"""Quantities with units, as users write them in infrastructure files.

Rates and sizes use decimal SI prefixes (``k``, ``M``, ``G``: powers of 1000) and binary IEC
prefixes (``Ki``, ``Mi``, ``Gi``: powers of 1024); ``bit`` rates are divided by 8. A plain number
is bytes (per second) for sizes and rates. Durations must carry a unit: a bare ``5`` could mean
seconds or milliseconds, and guessing wrong skews every plan by a factor of 1000.
"""

from __future__ import annotations

import math
import re

_NUMBER_UNIT = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-zµ/]*)\s*$")

_PREFIX = {
    "": 1,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_SIZE_UNITS = {f"{p}B": factor for p, factor in _PREFIX.items()}
_BIT_UNITS = {f"{p}bit": factor / 8 for p, factor in _PREFIX.items()}
_RATE_UNITS = {
    **{f"{u}/s": f for u, f in _SIZE_UNITS.items()},
    **{f"{u}/s": f for u, f in _BIT_UNITS.items()},
    **{f"{p}bps": factor / 8 for p, factor in _PREFIX.items() if "i" not in p},
}
_DURATION_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}

BANDWIDTH_EXAMPLES = "5MB/s, 40Mbit/s, 1.5GB/s, 100kB/s, 10MiB/s or 5000000 (bytes/s)"
DURATION_EXAMPLES = "5ms, 0.5s or 200us"
MEMORY_EXAMPLES = "4GiB, 512MB or 4294967296 (bytes)"


def parse_bandwidth(value: object) -> float:
    """Bytes per second from ``5MB/s``, ``40Mbit/s``, ``10MiB/s`` or a plain number."""
    return _parse(
        value, _RATE_UNITS, plain_factor=1.0, what="bandwidth", examples=BANDWIDTH_EXAMPLES
    )


def parse_duration(value: object) -> float:
    """Seconds from ``5ms``, ``0.5s``, ``200us``; a bare number is accepted only when it is 0."""
    return _parse(
        value, _DURATION_UNITS, plain_factor=None, what="duration", examples=DURATION_EXAMPLES
    )


def parse_memory(value: object) -> int:
    """Bytes from ``4GiB``, ``512MB`` or a plain integer (rounded down to whole bytes)."""
    return int(
        _parse(value, _SIZE_UNITS, plain_factor=1.0, what="memory size", examples=MEMORY_EXAMPLES)
    )


def _parse(
    value: object,
    units: dict[str, float],
    *,
    plain_factor: float | None,
    what: str,
    examples: str,
) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a {what} such as {examples}, got {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if match is None:
            raise ValueError(f"cannot read {value!r} as a {what}; write e.g. {examples}")
        number, unit = float(match.group(1)), match.group(2)
    else:
        raise ValueError(f"expected a {what} such as {examples}, got {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if unit == "":
        if plain_factor is None:
            if number == 0:
                return 0.0
            raise ValueError(f"{what} {value!r} has no unit; write e.g. {examples}")
        return number * plain_factor
    if unit not in units:
        raise ValueError(f"unknown unit {unit!r} in {value!r}; write e.g. {examples}")
    return number * units[unit]
