"""The run directory: what an experiment (``qsplit demo``) planned, ran and measured.

``<run dir>/run.json`` (kind ``demo-run``, schema version 1) indexes everything else in the
directory by relative path, so the report can be rebuilt from the directory alone
(``qsplit report RUN_DIR``) and a run directory can be moved or archived whole.

Every *entry* is one configuration priced by the cost model (``predicted``) and executed on the
agents (``measured``): a plan the MILP chose, or a baseline, within one *scenario* (a set of
nodes). Two entries with the same placement and quantization share one run file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qsplit._jsonio import read_json, write_json

RUN_KIND = "demo-run"
RUN_SCHEMA_VERSION = 1
RUN_FILE = "run.json"

EntryKind = Literal["plan", "baseline"]


@dataclass(frozen=True)
class Costs:
    """Latency and energy of one inference, predicted or measured."""

    latency_s: float
    energy_j: float
    device_energy_j: float

    def to_dict(self) -> dict[str, float]:
        return vars(self).copy()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Costs:
        return cls(
            float(data["latency_s"]), float(data["energy_j"]), float(data["device_energy_j"])
        )


@dataclass(frozen=True)
class Measured(Costs):
    """Medians over the measured requests; energy is the cost model's prices applied to the
    measured compute and transfer times."""

    latency_p90_s: float = 0.0
    requests: int = 0
    failed: int = 0
    compute_s: dict[str, float] = field(default_factory=dict)
    """Per node: median compute time per request."""
    transfer_s: dict[str, float] = field(default_factory=dict)
    """Per link ``"a->b"``: median transfer time per request (latency included)."""
    max_abs_diff: float | None = None
    """Largest |output − whole model's output| over the checked requests (``None``: unchecked)."""
    noise: float | None = None
    """Quantization noise as the noise model defines it, measured on the deployed plan: mean
    over its evaluation images of mean |output − whole fp32 model's output| (``None``: an fp32
    entry, or not measured)."""

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measured:
        diff, noise = data.get("max_abs_diff"), data.get("noise")
        return cls(
            latency_s=float(data["latency_s"]),
            energy_j=float(data["energy_j"]),
            device_energy_j=float(data["device_energy_j"]),
            latency_p90_s=float(data.get("latency_p90_s", 0.0)),
            requests=int(data.get("requests", 0)),
            failed=int(data.get("failed", 0)),
            compute_s={k: float(v) for k, v in data.get("compute_s", {}).items()},
            transfer_s={k: float(v) for k, v in data.get("transfer_s", {}).items()},
            max_abs_diff=None if diff is None else float(diff),
            noise=None if noise is None else float(noise),
        )


@dataclass(frozen=True)
class Entry:
    """One configuration in one scenario: its placement, prediction and measurement."""

    id: str
    scenario: str
    kind: EntryKind
    label: str
    """What it is, for tables: e.g. ``qsplit (w_lat 0.5, noise ≤ 0.02)`` or ``best-split``."""
    assignment: dict[str, str]
    """Block → node."""
    quantized: tuple[str, ...]
    noise: float
    """Predicted quantization noise of this configuration."""
    predicted: Costs
    measured: Measured | None
    """``None`` when the run failed (see ``error``)."""
    run: str | None = None
    """Relative path of the ``runtime-results`` file of its run."""
    plan: str | None = None
    """Relative path of the plan file (plans only)."""
    w_latency: float | None = None
    noise_max: float | None = None
    error: str | None = None
    link_precision: dict[str, str] = field(default_factory=dict)
    """Tensor → fp16|int8: what crosses links below fp32 (the plan's ``link_precision``)."""
    link_codec: dict[str, str] = field(default_factory=dict)
    """Tensor → lz4|zstd: what is compressed on links (the plan's ``link_codec``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scenario": self.scenario,
            "kind": self.kind,
            "label": self.label,
            "assignment": self.assignment,
            "quantized": list(self.quantized),
            "noise": self.noise,
            "predicted": self.predicted.to_dict(),
            "measured": None if self.measured is None else self.measured.to_dict(),
            "run": self.run,
            "plan": self.plan,
            "w_latency": self.w_latency,
            "noise_max": self.noise_max,
            "error": self.error,
            "link_precision": self.link_precision,
            "link_codec": self.link_codec,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        measured = data.get("measured")
        return cls(
            id=data["id"],
            scenario=data["scenario"],
            kind=data["kind"],
            label=data["label"],
            assignment=dict(data["assignment"]),
            quantized=tuple(data["quantized"]),
            noise=float(data["noise"]),
            predicted=Costs.from_dict(data["predicted"]),
            measured=None if measured is None else Measured.from_dict(measured),
            run=data.get("run"),
            plan=data.get("plan"),
            w_latency=data.get("w_latency"),
            noise_max=data.get("noise_max"),
            error=data.get("error"),
            link_precision=dict(data.get("link_precision", {})),
            link_codec=dict(data.get("link_codec", {})),
        )


@dataclass(frozen=True)
class Scenario:
    """A set of nodes plans may use (e.g. device only, device + edge)."""

    name: str
    infra: str
    """Relative path of the scenario's infrastructure file (copied into the run directory)."""
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class RunIndex:
    """Everything one experiment produced, by relative path, plus its entries."""

    model: dict[str, Any]
    """``path``, ``sha256``, ``blocks``, ``macs``."""
    layergraph: str
    profiles: dict[str, str]
    """Node → compute profile file."""
    links: str | None
    """Measured link profile file."""
    noise: str | None
    """Noise model file (its samples sit beside it)."""
    scenarios: tuple[Scenario, ...]
    entries: tuple[Entry, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    """How it was run: requests per entry, latency model, noise samples, machine, timings."""

    def save(self, run_dir: Path) -> Path:
        return write_json(
            run_dir / RUN_FILE,
            RUN_KIND,
            RUN_SCHEMA_VERSION,
            {
                "model": self.model,
                "layergraph": self.layergraph,
                "profiles": self.profiles,
                "links": self.links,
                "noise": self.noise,
                "settings": self.settings,
                "scenarios": [vars(s) | {"nodes": list(s.nodes)} for s in self.scenarios],
                "entries": [e.to_dict() for e in self.entries],
            },
        )

    @classmethod
    def load(cls, run_dir: Path) -> RunIndex:
        data = read_json(run_dir / RUN_FILE, RUN_KIND, (RUN_SCHEMA_VERSION,))
        return cls(
            model=dict(data["model"]),
            layergraph=data["layergraph"],
            profiles=dict(data["profiles"]),
            links=data.get("links"),
            noise=data.get("noise"),
            settings=dict(data.get("settings", {})),
            scenarios=tuple(
                Scenario(s["name"], s["infra"], tuple(s["nodes"])) for s in data["scenarios"]
            ),
            entries=tuple(Entry.from_dict(e) for e in data["entries"]),
        )
