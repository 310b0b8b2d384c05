"""Profiles: measured per-block compute times on one node, and measured links.

These are the planner's inputs. They refer to the model by sha256 and to blocks by name, so a
profile can be checked against the LayerGraph it is used with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsplit._jsonio import read_json, write_json
from qsplit.errors import InputError

COMPUTE_PROFILE_KIND = "compute-profile"
LINK_PROFILE_KIND = "link-profile"
COMPRESSION_KIND = "compression"
SCHEMA_VERSION = 1

CODEC_OPERATIONS: tuple[str, ...] = ("cast16", "int8", "lz4", "zstd")
"""What a node may spend time on to send a tensor cheaper: fp32↔fp16 casts, int8
quantize/dequantize, and the lossless codecs' compress/decompress."""
CODECS: tuple[str, ...] = ("none", "lz4", "zstd")
"""Lossless codecs a link may apply after the link precision (``none``: sent as is)."""


@dataclass(frozen=True)
class BlockTiming:
    """Latency of one block on one node, in seconds (medians over repetitions)."""

    fp32_s: float
    int8_s: float | None = None
    """``None`` when the block was not profiled quantized (not quantizable)."""
    fp32_spread_s: float = 0.0
    """Interquartile range of the fp32 repetitions."""
    int8_spread_s: float = 0.0


@dataclass(frozen=True)
class CodecCost:
    """Time of one codec operation on one node: ``fixed_s + per_byte_s × input bytes``.

    Affine because small tensors are dominated by call overhead and large ones by memory
    bandwidth; the planner needs both to judge whether compressing a link pays.
    """

    fixed_s: float
    per_byte_s: float

    def seconds(self, input_bytes: float) -> float:
        return self.fixed_s + self.per_byte_s * input_bytes

    def to_dict(self) -> dict[str, float]:
        return {"fixed_s": self.fixed_s, "per_byte_s": self.per_byte_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecCost:
        return cls(fixed_s=float(data["fixed_s"]), per_byte_s=float(data["per_byte_s"]))


@dataclass(frozen=True)
class CodecTimes:
    """Encode and decode cost of each codec operation (:data:`CODEC_OPERATIONS`) on one node.

    Input bytes are those the operation reads: fp32 bytes for the fp16/int8 encodes, 2 or 1
    byte per element for their decodes, the uncompressed bytes for a compress and the
    compressed ones for a decompress. An operation missing here was not measured on the node,
    and the planner does not use it there.
    """

    encode: dict[str, CodecCost]
    decode: dict[str, CodecCost]

    def __post_init__(self) -> None:
        unknown = sorted((set(self.encode) | set(self.decode)) - set(CODEC_OPERATIONS))
        if unknown:
            raise InputError(
                f"unknown codec operation(s) {', '.join(unknown)}",
                field="codec",
                fix=f"use {', '.join(CODEC_OPERATIONS)}",
            )

    def scaled(self, factor: float) -> CodecTimes:
        """These costs on a node ``factor`` times slower (a scaled shipped profile)."""

        def scale(costs: dict[str, CodecCost]) -> dict[str, CodecCost]:
            return {
                op: CodecCost(c.fixed_s * factor, c.per_byte_s * factor) for op, c in costs.items()
            }

        return CodecTimes(scale(self.encode), scale(self.decode))

    def supports(self, operation: str) -> bool:
        return operation in self.encode and operation in self.decode

    def to_dict(self) -> dict[str, Any]:
        return {
            op: {"encode": self.encode[op].to_dict(), "decode": self.decode[op].to_dict()}
            for op in CODEC_OPERATIONS
            if self.supports(op)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecTimes:
        return cls(
            encode={op: CodecCost.from_dict(d["encode"]) for op, d in data.items()},
            decode={op: CodecCost.from_dict(d["decode"]) for op, d in data.items()},
        )


@dataclass(frozen=True)
class Overhead:
    """What a request costs a node beyond its blocks' compute and the links, in seconds.

    Blocks are timed alone and links are probed through the agents, so neither sees the
    requester's own exchange with the agent on its host: the message that hands it the model
    inputs, the message that brings outputs back, and the client's bookkeeping around them. For
    a model that runs in a few milliseconds these dominate (docs/profiling.md, *Fixed costs*).
    The cost model charges them to the requesting device (:func:`qsplit.plan.overhead_s`).
    """

    request_s: float = 0.0
    """Fixed cost of one request to the requester: sending it off, collecting the replies."""
    message_s: float = 0.0
    """Fixed part of one message between the requester and the agent on its own host, which
    crosses no link (inputs consumed there, outputs produced there)."""
    local_bandwidth_bytes_per_s: float = float("inf")
    """Bytes per second of such a message (serialising, copying, the loopback socket)."""

    def local_message_s(self, nbytes: float) -> float:
        """Time of one local message carrying ``nbytes`` of tensors."""
        return self.message_s + nbytes / self.local_bandwidth_bytes_per_s

    def to_dict(self) -> dict[str, float | None]:
        bandwidth = self.local_bandwidth_bytes_per_s
        return {
            "request_s": self.request_s,
            "message_s": self.message_s,
            "local_bandwidth_bytes_per_s": None if bandwidth == float("inf") else bandwidth,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Overhead:
        bandwidth = data.get("local_bandwidth_bytes_per_s")
        return cls(
            float(data["request_s"]),
            float(data["message_s"]),
            float("inf") if bandwidth is None else float(bandwidth),
        )


@dataclass(frozen=True)
class ComputeProfile:
    """Per-block latencies of one model on one node."""

    node: str
    model_sha256: str
    granularity: str
    blocks: dict[str, BlockTiming]
    settings: dict[str, Any] = field(default_factory=dict)
    """How it was measured: execution provider, threads, repetitions, padding factor, source."""
    codec: CodecTimes | None = None
    """Encode/decode costs for link precision and compression; ``None``: not measured (older
    files), so links from and to this node stay fp32 and uncompressed."""
    overhead: Overhead | None = None
    """The node's fixed costs as a requester; ``None`` when not measured (counted as 0)."""

    def blocks_scaled(self, factor: float) -> dict[str, BlockTiming]:
        """Every block's times (and spreads) × ``factor``: the blocks of a node ``factor``
        times slower."""
        return {
            name: BlockTiming(
                fp32_s=t.fp32_s * factor,
                int8_s=None if t.int8_s is None else t.int8_s * factor,
                fp32_spread_s=t.fp32_spread_s * factor,
                int8_spread_s=t.int8_spread_s * factor,
            )
            for name, t in self.blocks.items()
        }

    def to_dict(self) -> dict[str, Any]:
        codec = {} if self.codec is None else {"codec": self.codec.to_dict()}
        return {
            "node": self.node,
            "model": {"sha256": self.model_sha256},
            "granularity": self.granularity,
            "settings": self.settings,
            **({} if self.overhead is None else {"overhead": self.overhead.to_dict()}),
            "blocks": {
                name: {
                    "fp32_s": t.fp32_s,
                    "int8_s": t.int8_s,
                    "fp32_spread_s": t.fp32_spread_s,
                    "int8_spread_s": t.int8_spread_s,
                }
                for name, t in self.blocks.items()
            },
            **codec,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComputeProfile:
        return cls(
            node=data["node"],
            model_sha256=data["model"]["sha256"],
            granularity=data["granularity"],
            settings=dict(data.get("settings", {})),
            overhead=None if data.get("overhead") is None else Overhead.from_dict(data["overhead"]),
            blocks={
                name: BlockTiming(
                    fp32_s=float(t["fp32_s"]),
                    int8_s=None if t.get("int8_s") is None else float(t["int8_s"]),
                    fp32_spread_s=float(t.get("fp32_spread_s", 0.0)),
                    int8_spread_s=float(t.get("int8_spread_s", 0.0)),
                )
                for name, t in data["blocks"].items()
            },
            codec=None if data.get("codec") is None else CodecTimes.from_dict(data["codec"]),
        )

    def save(self, path: str) -> None:
        write_json(path, COMPUTE_PROFILE_KIND, SCHEMA_VERSION, self.to_dict())

    @classmethod
    def load(cls, path: str) -> ComputeProfile:
        return cls.from_dict(read_json(path, COMPUTE_PROFILE_KIND, (SCHEMA_VERSION,)))


def load_compute_profiles(paths: Iterable[str | Path]) -> dict[str, tuple[Path, ComputeProfile]]:
    """Node → (file, profile) from compute-profile files or directories of them (every
    compute profile in a directory is read); one profile per node."""
    found: dict[str, tuple[Path, ComputeProfile]] = {}
    for path in _profile_files(paths):
        profile = ComputeProfile.load(str(path))
        if profile.node in found:
            raise InputError(
                f"second profile for node {profile.node!r} (first: {found[profile.node][0]})",
                file=path,
                field="node",
                fix="pass one profile per node",
            )
        found[profile.node] = (path, profile)
    return found


def _profile_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [p for p in sorted(path.glob("*.json")) if _kind(p) == COMPUTE_PROFILE_KIND]
            if not found:
                raise InputError(
                    "no compute profiles (*.json) in this directory",
                    file=path,
                    fix="run `qsplit profile` for each node",
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise InputError("file not found", file=path, fix="check the path")
    return files


def _kind(path: Path) -> object:
    """The ``kind`` of a qsplit JSON file (``None`` for anything else), to skip other files."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document.get("kind") if isinstance(document, dict) else None


@dataclass(frozen=True)
class LinkMeasurement:
    """One-way latency and bandwidth measured from one endpoint to another."""

    source: str
    target: str
    latency_s: float
    bandwidth_bytes_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "latency_s": self.latency_s,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinkMeasurement:
        return cls(
            source=data["from"],
            target=data["to"],
            latency_s=float(data["latency_s"]),
            bandwidth_bytes_per_s=float(data["bandwidth_bytes_per_s"]),
        )


@dataclass(frozen=True)
class LinkProfile:
    """A set of measured links, saved beside the compute profiles."""

    links: tuple[LinkMeasurement, ...]

    def save(self, path: str) -> None:
        write_json(
            path, LINK_PROFILE_KIND, SCHEMA_VERSION, {"links": [m.to_dict() for m in self.links]}
        )

    @classmethod
    def load(cls, path: str) -> LinkProfile:
        data = read_json(path, LINK_PROFILE_KIND, (SCHEMA_VERSION,))
        return cls(links=tuple(LinkMeasurement.from_dict(m) for m in data["links"]))


@dataclass(frozen=True)
class CompressionTable:
    """How much a lossless codec shrinks each crossing tensor at each link precision.

    Ratios (compressed / raw bytes, ≤ 1 when it pays) are measured on the reference run's
    values, so they hold for inputs like the reference one; activations after ReLU/SiLU
    compress, fp32 noise-like ones barely do. Keyed by the model's LayerGraph tensor name.
    """

    model_sha256: str
    ratios: dict[tuple[str, str, str], float]
    """(tensor, precision ``fp32``/``fp16``/``int8``, codec ``lz4``/``zstd``) → ratio."""
    settings: dict[str, Any] = field(default_factory=dict)
    """How it was measured: codec levels, library versions, input."""

    def ratio(self, tensor: str, precision: str, codec: str) -> float | None:
        """The ratio, 1 for codec ``none``, ``None`` when not measured."""
        if codec == "none":
            return 1.0
        return self.ratios.get((tensor, precision, codec))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {"sha256": self.model_sha256},
            "settings": self.settings,
            "ratios": [
                {"tensor": t, "precision": p, "codec": c, "ratio": r}
                for (t, p, c), r in self.ratios.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressionTable:
        return cls(
            model_sha256=data["model"]["sha256"],
            settings=dict(data.get("settings", {})),
            ratios={
                (r["tensor"], r["precision"], r["codec"]): float(r["ratio"]) for r in data["ratios"]
            },
        )

    def save(self, path: str | Path) -> None:
        write_json(path, COMPRESSION_KIND, SCHEMA_VERSION, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> CompressionTable:
        return cls.from_dict(read_json(path, COMPRESSION_KIND, (SCHEMA_VERSION,)))
