"""The planning problem: everything the planner needs, checked for consistency once.

A :class:`PlanningProblem` ties a LayerGraph to an infrastructure, one compute profile per node,
an optional noise model, the bounds and the objective. Building one validates that the pieces
describe the same model and cover each other, and lists every mismatch at once, so that neither
the cost model nor the MILP has to defend against missing timings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, get_args

from qsplit.errors import InputError
from qsplit.infra import Infra
from qsplit.model import LayerGraph
from qsplit.profile import CODECS, CompressionTable, ComputeProfile, Overhead
from qsplit.quant import DEGENERATE_FIX, NoisePolynomial, link_candidates, link_variable

LatencyModel = Literal["sum", "critical-path"]
LATENCY_MODELS: tuple[str, ...] = get_args(LatencyModel)

Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")
"""Precision levels a block can run at; the planner chooses one per block."""


LINK_OPTIONS: frozenset[str] = frozenset({"fp16", "int8", "lz4", "zstd"})
"""What the planner may do to a crossing tensor: lower its precision, compress it."""


@dataclass(frozen=True)
class LinkMode:
    """How a tensor crosses links: its link precision, then a lossless codec.

    The precision applies to tensors whose producer runs fp32; a quantized producer's output
    crosses as int8 whatever it says (the planner keeps it ``fp32`` there).
    """

    precision: str = "fp32"
    """``fp32``, ``fp16`` or ``int8`` (per-tensor affine, calibration range)."""
    codec: str = "none"
    """``none``, ``lz4`` or ``zstd``."""


FP32_LINK = LinkMode()
"""Sent as computed: what every baseline and a plan without link precision use."""

_CODEC_OPERATION = {"fp16": "cast16", "int8": "int8"}


@dataclass(frozen=True)
class Bounds:
    """Constraints every plan must meet (``None`` switches a bound off)."""

    noise_max: float | None = None
    """Largest predicted quantization noise allowed (in the noise model's metric)."""
    device_energy_budget_j: float | None = None
    """Largest energy the requesting device may spend on one inference, in joules."""
    memory: bool = True
    """Keep each node's weights and activations within its ``memory_bytes``."""


@dataclass(frozen=True)
class PlanningProblem:
    """A validated, self-consistent input to :func:`qsplit.plan.plan` and :func:`evaluate`."""

    graph: LayerGraph
    infra: Infra
    profiles: Mapping[str, ComputeProfile]
    """One compute profile per infrastructure node, keyed by node name."""
    noise: NoisePolynomial | None = None
    """Noise model; without one nothing is quantized."""
    bounds: Bounds = Bounds()
    w_latency: float = 0.5
    """Weight of normalised latency in the objective."""
    w_energy: float = 0.5
    """Weight of normalised energy in the objective."""
    latency_model: LatencyModel = "sum"
    """``sum`` of all compute and transfer times, or the ``critical-path`` (docs/planner.md)."""
    compression: CompressionTable | None = None
    """Lossless codecs' ratios per crossing tensor; without it no link is compressed."""
    link_precisions: frozenset[str] = LINK_OPTIONS
    """Which of :data:`LINK_OPTIONS` the planner may use (empty: every link fp32, as computed);
    each also needs its inputs (:meth:`link_modes`)."""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Files the inputs came from (keys ``graph``, ``infra``, ``noise``, ``profile:<node>``)."""

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            listing = "".join(f"\n  - {p}" for p in problems)
            raise InputError(f"{len(problems)} inconsistent planning input(s):{listing}")

    @cached_property
    def quantizable(self) -> tuple[str, ...]:
        """Blocks the planner may quantize: in the noise model's set and int8-profiled everywhere.

        In graph order. Empty without a noise model: quantizing without predicting its noise
        would always look free.
        """
        if self.noise is None:
            return ()
        candidates = set(self.noise.quantizable)
        return tuple(
            b.name
            for b in self.graph.blocks
            if b.name in candidates
            and all(p.blocks[b.name].int8_s is not None for p in self.profiles.values())
        )

    def precisions(self, block: str) -> tuple[Precision, ...]:
        """Precision levels open to ``block``."""
        return PRECISIONS if block in self._quantizable_set else ("fp32",)

    def compute_s(self, block: str, node: str, precision: Precision) -> float:
        """Profiled latency of ``block`` on ``node`` at ``precision``, in seconds."""
        timing = self.profiles[node].blocks[block]
        if precision == "fp32":
            return timing.fp32_s
        if timing.int8_s is None or block not in self._quantizable_set:
            raise InputError(f"block {block!r} cannot be quantized", field="quantized")
        return timing.int8_s

    def link_modes(self, tensor: str) -> tuple[LinkMode, ...]:
        """How ``tensor`` may cross links, :data:`FP32_LINK` first.

        A lossy precision needs its noise variable in the noise model and its cast/quantize
        times on every node; a codec needs its times on every node and a measured ratio at that
        precision (and at int8, when the producer may be quantized).
        """
        return self._link_modes.get(tensor, (FP32_LINK,))

    @cached_property
    def _link_modes(self) -> dict[str, tuple[LinkMode, ...]]:
        options = self.link_precisions
        profiles = list(self.profiles.values())

        def everywhere(operation: str) -> bool:
            return all(p.codec is not None and p.codec.supports(operation) for p in profiles)

        links = set(self.noise.links) if self.noise is not None else set()
        precisions = ["fp32"] + [
            p
            for p in ("fp16", "int8")
            if p in options and everywhere(_CODEC_OPERATION[p]) and links
        ]
        codecs = [c for c in CODECS[1:] if c in options and everywhere(c)]
        table = self.compression
        modes: dict[str, tuple[LinkMode, ...]] = {}
        for tensor in link_candidates(self.graph):
            producer = self.graph.tensor_by_name[tensor].producer
            quantizable = producer in self._quantizable_set
            found = [
                LinkMode(p, c)
                for p in precisions
                if p == "fp32" or link_variable(tensor, p) in links
                for c in ("none", *codecs)
                if c == "none"
                or (
                    table is not None
                    and table.ratio(tensor, p, c) is not None
                    and (not quantizable or table.ratio(tensor, "int8", c) is not None)
                )
            ]
            if len(found) > 1:
                modes[tensor] = tuple(found)
        return modes

    @cached_property
    def noise_variables(self) -> tuple[str, ...]:
        """Quantizable blocks and the link variables some tensor's modes use: what the noise
        polynomial is evaluated over."""
        lossy = {
            link_variable(t, m.precision)
            for t, modes in self._link_modes.items()
            for m in modes
            if m.precision != "fp32"
        }
        return self.quantizable + tuple(sorted(lossy))

    @property
    def overhead(self) -> Overhead:
        """The requesting device's fixed costs (zero when its profile has none)."""
        return self.profiles[self.infra.device].overhead or Overhead()

    @cached_property
    def _quantizable_set(self) -> frozenset[str]:
        return frozenset(self.quantizable)

    def _where(self, key: str) -> str:
        return self.sources.get(key, key)

    def _problems(self) -> list[str]:
        problems: list[str] = []
        sha = self.graph.model.sha256
        nodes = set(self.infra.node_names)
        blocks = self.graph.block_names
        for node in self.infra.node_names:
            if node not in self.profiles:
                problems.append(
                    f"{self._where('infra')}: node {node!r} has no compute profile. "
                    f"Fix: profile the model on {node!r} and pass its profile"
                )
        for node, profile in self.profiles.items():
            where = self._where(f"profile:{node}")
            if node not in nodes:
                problems.append(
                    f"{where}: profile for unknown node {node!r}. "
                    f"Fix: use one of {', '.join(sorted(nodes))} or drop the profile"
                )
            if profile.node != node:
                problems.append(
                    f"{where}: node: profile is for {profile.node!r}, given for {node!r}. "
                    "Fix: pass each node's own profile"
                )
            if profile.model_sha256 != sha:
                problems.append(
                    f"{where}: model.sha256: profiled a different model "
                    f"({profile.model_sha256[:12]}…, graph has {sha[:12]}…). "
                    "Fix: profile the same ONNX file the graph was built from"
                )
                continue
            missing = [b for b in blocks if b not in profile.blocks]
            if missing:
                problems.append(
                    f"{where}: blocks: {len(missing)} block(s) without timing, first "
                    f"{missing[0]!r}. Fix: profile at the graph's granularity "
                    f"({self.graph.granularity!r})"
                )
            bad = [
                name
                for name, t in profile.blocks.items()
                if not _nonneg(t.fp32_s) or (t.int8_s is not None and not _nonneg(t.int8_s))
            ]
            if bad:
                problems.append(
                    f"{where}: blocks.{bad[0]}: timings must be finite and ≥ 0 "
                    f"({len(bad)} block(s) are not). Fix: re-profile"
                )
        if self.compression is not None and self.compression.model_sha256 != sha:
            problems.append(
                f"{self._where('compression')}: model.sha256: compression table of a different "
                "model. Fix: measure it on the same ONNX file"
            )
        problems.extend(self._noise_problems(sha, set(blocks)))
        problems.extend(self._objective_problems())
        return problems

    def _noise_problems(self, sha: str, blocks: set[str]) -> list[str]:
        if self.noise is None:
            if self.bounds.noise_max is not None:
                return [
                    "noise_max: a noise bound needs a noise model. "
                    "Fix: pass --noise noise.json or drop the bound"
                ]
            return []
        where = self._where("noise")
        problems = []
        if self.noise.model_sha256 != sha:
            problems.append(
                f"{where}: model.sha256: noise model of a different model. "
                "Fix: fit the noise model on the same ONNX file"
            )
        unknown = [b for b in self.noise.quantizable if b not in blocks]
        if unknown:
            problems.append(
                f"{where}: quantizable: {len(unknown)} unknown block(s), first {unknown[0]!r}. "
                "Fix: fit the noise model at the graph's granularity"
            )
        tensors = set(self.graph.tensor_by_name)
        strange = [
            v for v in self.noise.links if v.removeprefix("link:").rpartition(":")[0] not in tensors
        ]
        if strange:
            problems.append(
                f"{where}: links: {len(strange)} variable(s) of unknown tensors, first "
                f"{strange[0]!r}. Fix: fit the noise model on the graph's model"
            )
        allowed = set(self.noise.quantizable) | set(self.noise.links)
        for i, term in enumerate(self.noise.terms):
            if not set(term.blocks) <= allowed or len(set(term.blocks)) != len(term.blocks):
                problems.append(
                    f"{where}: terms[{i}]: a term must name distinct quantizable blocks or "
                    "link variables. Fix: refit the noise model"
                )
        diagnosis = self.noise.diagnosis
        if diagnosis is not None and diagnosis.degenerate and self._may_quantize():
            problems.append(
                f"{where}: diagnosis: the noise study behind this model measured nothing "
                f"usable ({'; '.join(diagnosis.problems)}), so quantizing would look free. "
                f"Fix: refit it with `qsplit noise`: {DEGENERATE_FIX}; or plan without --noise, "
                "or with --noise-max 0"
            )
        return problems

    def _may_quantize(self) -> bool:
        """Whether the bounds leave the planner room to quantize a block or a link."""
        return bool(self.noise_variables) and self.bounds.noise_max != 0

    def _objective_problems(self) -> list[str]:
        problems = []
        if not (_nonneg(self.w_latency) and _nonneg(self.w_energy)):
            problems.append("objective weights must be finite and ≥ 0. Fix: e.g. 0.5 and 0.5")
        elif self.w_latency + self.w_energy == 0:
            problems.append("objective weights are both 0. Fix: give at least one a weight > 0")
        if self.latency_model not in LATENCY_MODELS:
            problems.append(
                f"latency_model: {self.latency_model!r} is unknown. "
                f"Fix: use one of {', '.join(LATENCY_MODELS)}"
            )
        if self.bounds.noise_max is not None and not _nonneg(self.bounds.noise_max):
            problems.append("noise_max must be finite and ≥ 0")
        budget = self.bounds.device_energy_budget_j
        if budget is not None and not _nonneg(budget):
            problems.append("device energy budget must be finite and ≥ 0 (joules)")
        return problems


def _nonneg(value: float) -> bool:
    return math.isfinite(value) and value >= 0
