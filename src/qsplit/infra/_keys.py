"""CURVE public keys as the infrastructure file writes them: Z85 text (ZeroMQ RFC 32).

Checked here without zmq, which stays behind the runtime's transport: a key is 40 characters
of the Z85 alphabet encoding 32 bytes, each group of five characters at most 2³² − 1.
"""

from __future__ import annotations

Z85_ALPHABET = (
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
CURVE_KEY_CHARS = 40
"""A 32-byte CURVE key in Z85."""

_VALUE = {c: i for i, c in enumerate(Z85_ALPHABET)}


def check_curve_key(value: object) -> str:
    """``value`` if it is a Z85 CURVE key; :class:`ValueError` saying what is wrong otherwise."""
    if not isinstance(value, str):
        raise ValueError(
            f"expected a quoted string of {CURVE_KEY_CHARS} characters, got {type(value).__name__}"
        )
    if len(value) != CURVE_KEY_CHARS:
        raise ValueError(f"a CURVE key has {CURVE_KEY_CHARS} characters, this one {len(value)}")
    bad = sorted({c for c in value if c not in _VALUE})
    if bad:
        raise ValueError(f"{''.join(bad)!r} are not Z85 characters")
    for start in range(0, CURVE_KEY_CHARS, 5):
        number = 0
        for c in value[start : start + 5]:
            number = number * 85 + _VALUE[c]
        if number >= 2**32:
            raise ValueError(f"characters {start}–{start + 4} do not encode four bytes")
    return value
