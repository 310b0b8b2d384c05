"""The fitted noise model as the planner sees it: a polynomial over quantization bits.

``noise(mask)^power = intercept + Σ coefficient · Π_{i ∈ term} q_i`` for a non-empty mask, and
exactly 0 for the empty mask (an unquantized model has no quantization noise, whatever the fit's
intercept says). Terms are products of distinct blocks only, because ``q_i² = q_i``.

Link precision adds variables of the same kind: ``link:<tensor>:fp16`` and ``link:<tensor>:int8``
are 1 when that tensor crosses links at that precision (:func:`link_variable`). Terms may name
them beside blocks; ``links`` lists those the study sampled.

``power`` is 1 or 2. Errors injected by separate blocks add roughly like independent variances,
so noise² is often closer to a low-degree polynomial than noise itself. Either way the planner's
constraint stays polynomial in the bits: ``noise ≤ B`` is ``polynomial ≤ B^power``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from qsplit._jsonio import read_json, write_json
from qsplit.quant._diagnosis import NoiseDiagnosis, diagnose_fit

NOISE_MODEL_KIND = "noise-model"
SCHEMA_VERSION = 3
"""2 added ``diagnosis``, 3 ``links``; older files still load (version 1 diagnosed from its
held-out R², versions 1–2 without link variables)."""

LINK_VARIABLE_PREFIX = "link:"


def link_variable(tensor: str, precision: str) -> str:
    """The noise variable of sending ``tensor`` over links at ``precision`` (fp16 or int8)."""
    return f"{LINK_VARIABLE_PREFIX}{tensor}:{precision}"


def is_link_variable(name: str) -> bool:
    return name.startswith(LINK_VARIABLE_PREFIX)


@dataclass(frozen=True)
class NoiseTerm:
    """One monomial: the product of the quantization bits of ``blocks`` (block names or
    :func:`link_variable` names), times a coefficient."""

    blocks: tuple[str, ...]
    coefficient: float


@dataclass(frozen=True)
class NoisePolynomial:
    """Predicted quantization noise as a function of which blocks are quantized."""

    model_sha256: str
    quantizable: tuple[str, ...]
    """Blocks that may be quantized (the candidate set the samples were drawn over)."""
    intercept: float
    terms: tuple[NoiseTerm, ...]
    degree: int
    metric: str = "mean_abs_output_error"
    fit: dict[str, Any] = field(default_factory=dict)
    """Fit quality and provenance: samples, train/test R², regressor choice."""
    power: int = 1
    """The polynomial predicts ``noise ** power``."""
    diagnosis: NoiseDiagnosis | None = None
    """Whether the study behind the fit measured anything (``None``: unknown)."""
    links: tuple[str, ...] = ()
    """Link variables (:func:`link_variable`) the samples were drawn over; empty in files from
    before link precision, which then allow no lossy link."""

    def predict(self, quantized: Iterable[str]) -> float:
        """Noise of quantizing exactly ``quantized`` (blocks and link variables; 0 for none)."""
        chosen = set(quantized)
        if not chosen:
            return 0.0
        value = self.intercept + sum(
            t.coefficient for t in self.terms if all(b in chosen for b in t.blocks)
        )
        return value if self.power == 1 else max(value, 0.0) ** (1.0 / self.power)

    def polynomial_bound(self, noise_max: float) -> float:
        """The polynomial's bound equivalent to ``noise ≤ noise_max`` (``noise_max ** power``)."""
        return noise_max if self.power == 1 else noise_max**self.power

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {"sha256": self.model_sha256},
            "metric": self.metric,
            "quantizable": list(self.quantizable),
            "links": list(self.links),
            "degree": self.degree,
            "power": self.power,
            "intercept": self.intercept,
            "terms": [{"blocks": list(t.blocks), "coefficient": t.coefficient} for t in self.terms],
            "fit": self.fit,
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoisePolynomial:
        fit = dict(data.get("fit", {}))
        # Version 1 files have no "diagnosis" key: judge them by their held-out R².
        recorded = data.get("diagnosis")
        diagnosis = (
            diagnose_fit(fit)
            if "diagnosis" not in data
            else NoiseDiagnosis.from_dict(recorded)
            if recorded
            else None
        )
        return cls(
            model_sha256=data["model"]["sha256"],
            metric=data.get("metric", "mean_abs_output_error"),
            quantizable=tuple(data["quantizable"]),
            links=tuple(data.get("links", ())),
            degree=int(data["degree"]),
            power=int(data.get("power", 1)),
            intercept=float(data["intercept"]),
            terms=tuple(
                NoiseTerm(blocks=tuple(t["blocks"]), coefficient=float(t["coefficient"]))
                for t in data["terms"]
            ),
            fit=fit,
            diagnosis=diagnosis,
        )

    def save(self, path: str) -> None:
        write_json(path, NOISE_MODEL_KIND, SCHEMA_VERSION, self.to_dict())

    @classmethod
    def load(cls, path: str) -> NoisePolynomial:
        return cls.from_dict(read_json(path, NOISE_MODEL_KIND, (1, 2, SCHEMA_VERSION)))
