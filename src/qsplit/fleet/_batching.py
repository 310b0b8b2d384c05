"""How a component's time grows with the batch size: ``t(b) = fixed + b·per_item``.

A batch profile stores, per block, the part of its batch-1 time that does not grow with the
batch (``fixed_fraction``, measured by ``bench/measure_batching.py`` with ONNX Runtime), so one
file serves every node: a node's profiled batch-1 time ``t₁`` of the block gives
``t(b) = t₁·(f + (1 − f)·b)``. A component's batch time is the sum over its blocks.

Blocks without a measured batch dimension, and models without a batch profile, fall back to
``f = 0``: ``t(b) = b·t₁``, no gain from batching (docs/fleet.md, Batching).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qsplit._jsonio import read_json
from qsplit.errors import InputError

BATCH_PROFILE_KIND = "batch-profile"
SHIPPED_DIR = Path(__file__).parent
"""Where the shipped batch profiles (``<model>.batch.json``) live."""


@dataclass(frozen=True)
class BatchProfile:
    """Per block, the fraction of its batch-1 time that a batch shares."""

    model_sha256: str | None
    """The model measured; ``None`` for the no-gain fallback, which fits every model."""
    fixed_fraction: Mapping[str, float] = field(default_factory=dict)
    """Block → fraction in [0, 1]; blocks not listed have 0."""
    source: str | None = field(default=None, compare=False)

    def split(self, block_times_s: Mapping[str, float]) -> tuple[float, float]:
        """``(fixed_s, per_item_s)`` of a component whose blocks take ``block_times_s`` at
        batch 1 on its node."""
        fixed = sum(t * self.fixed_fraction.get(b, 0.0) for b, t in block_times_s.items())
        return fixed, sum(block_times_s.values()) - fixed


NO_BATCHING = BatchProfile(model_sha256=None)
"""The fallback: every block's time grows linearly with the batch."""


def load_batch_profile(path: str | Path) -> BatchProfile:
    """Read a batch profile written by ``bench/measure_batching.py``."""
    document = read_json(path, BATCH_PROFILE_KIND, (1,))
    fractions: dict[str, float] = {}
    for block, entry in document.get("blocks", {}).items():
        value = entry.get("fixed_fraction") if isinstance(entry, Mapping) else None
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise InputError(
                f"fixed_fraction of {block!r} must be a number in [0, 1], got {value!r}",
                file=path,
                field=f"blocks.{block}.fixed_fraction",
                fix="measure it again with bench/measure_batching.py",
            )
        fractions[block] = float(value)
    return BatchProfile(document["model"]["sha256"], fractions, str(path))


def batch_profile_for(model_sha256: str, paths: Iterable[Path] | None = None) -> BatchProfile:
    """The shipped (or given) batch profile of this model, else :data:`NO_BATCHING`."""
    for path in paths if paths is not None else sorted(SHIPPED_DIR.glob("*.batch.json")):
        profile = load_batch_profile(path)
        if profile.model_sha256 == model_sha256:
            return profile
    return NO_BATCHING
