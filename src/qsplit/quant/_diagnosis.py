"""Is a noise study meaningful? Three signs that it measured nothing.

A model fed inputs unlike its own (wrong normalisation, channel order, size) can answer with
outputs that are ~0 everywhere; quantizing it then changes nothing measurable, the fit explains
noise that is float rounding, and a planner trusting it quantizes freely. This was seen on a
PaddleOCR text detector fed letterboxed [0, 1] photos: noise ≤ 5.5e-8, held-out R² 0.11; with
its own preprocessing and images the fit reached R² 0.999. The checks:

* outputs ~0: the mean |fp32 output| is below :data:`OUTPUT_SCALE_MIN`;
* noise below float resolution: the largest measured noise is within
  :data:`RESOLUTION_ULPS` float32 steps at the output's largest magnitude;
* a poor fit: held-out R² below :data:`R2_MIN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OUTPUT_SCALE_MIN = 1e-6
"""Mean |fp32 output| below this is taken for an output that is ~0."""
RESOLUTION_ULPS = 16
"""Noise within this many float32 steps (at the largest |output|) is rounding, not signal."""
R2_MIN = 0.9
"""A fit explaining less of the held-out noise than this cannot steer a plan."""
DEGENERATE_FIX = (
    "give the model's own preprocessing (--preprocess FILE: size, resize, channel order, "
    "mean/std; see docs/formats.md) and images of the kind it is made for (--calib DIR)"
)


@dataclass(frozen=True)
class NoiseDiagnosis:
    """The evidence about one noise study and the problems it shows (empty: it looks sound)."""

    output_mean_abs: float | None
    """Mean |fp32 output| on the evaluation inputs (``None``: not recorded, an old file)."""
    output_max_abs: float | None
    noise_max: float | None
    """Largest measured noise over the samples."""
    float_resolution: float | None
    """float32 spacing at ``output_max_abs``: the smallest change the output can show."""
    r2_test: float | None
    problems: tuple[str, ...]

    @property
    def degenerate(self) -> bool:
        return bool(self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_mean_abs": self.output_mean_abs,
            "output_max_abs": self.output_max_abs,
            "noise_max": self.noise_max,
            "float_resolution": self.float_resolution,
            "r2_test": self.r2_test,
            "problems": list(self.problems),
            "thresholds": {
                "output_scale_min": OUTPUT_SCALE_MIN,
                "resolution_ulps": RESOLUTION_ULPS,
                "r2_min": R2_MIN,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseDiagnosis:
        return cls(
            output_mean_abs=data.get("output_mean_abs"),
            output_max_abs=data.get("output_max_abs"),
            noise_max=data.get("noise_max"),
            float_resolution=data.get("float_resolution"),
            r2_test=data.get("r2_test"),
            problems=tuple(data.get("problems", ())),
        )


def diagnose(
    reference: Sequence[np.ndarray], noises: Sequence[float], r2_test: float | None
) -> NoiseDiagnosis:
    """Check a study whose float model answered ``reference`` and whose masks measured
    ``noises`` (the empty mask's 0 may be among them), fitted with held-out ``r2_test``."""
    magnitudes = np.concatenate([np.abs(r.astype(np.float64)).ravel() for r in reference])
    mean_abs = float(magnitudes.mean()) if magnitudes.size else 0.0
    max_abs = float(magnitudes.max()) if magnitudes.size else 0.0
    resolution = float(np.spacing(np.float32(max_abs)))
    noise_max = max(noises, default=0.0)
    problems = []
    if mean_abs < OUTPUT_SCALE_MIN:
        problems.append(
            f"the float model's outputs are ~0 (mean |output| {mean_abs:.3g} < "
            f"{OUTPUT_SCALE_MIN:g}) on these inputs"
        )
    if noise_max <= RESOLUTION_ULPS * resolution:
        problems.append(
            f"the largest measured noise {noise_max:.3g} is within {RESOLUTION_ULPS} float32 "
            f"steps ({resolution:.3g}) of the output"
        )
    if r2_test is not None and not r2_test >= R2_MIN:
        problems.append(
            f"the fit's held-out R² is {r2_test:.3f} < {R2_MIN:g} (if the outputs look sound, "
            "measure more masks: --samples)"
        )
    return NoiseDiagnosis(mean_abs, max_abs, noise_max, resolution, r2_test, tuple(problems))


def diagnose_fit(fit: dict[str, Any]) -> NoiseDiagnosis | None:
    """What can be said of a noise model written before diagnoses were recorded: its fit's
    held-out R² only (``None`` when the fit records none)."""
    r2 = fit.get("r2_test")
    if not isinstance(r2, int | float):
        return None
    problems = () if r2 >= R2_MIN else (f"the fit's held-out R² is {r2:.3f} < {R2_MIN:g}",)
    return NoiseDiagnosis(None, None, None, None, float(r2), problems)
