"""The LayerGraph: the value object every later stage plans and runs on.

A LayerGraph is the ONNX graph seen at the granularity the planner decides on: *blocks* (one ONNX
node, or a group of them) connected by *tensors* (the values that may cross a link). Weights are
not tensors here; they belong to the blocks that read them. Everything is frozen so that stages
can share one graph without copying or defending against mutation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import networkx as nx

from qsplit._jsonio import read_json, write_json
from qsplit.errors import AssignmentError

Granularity = Literal["node", "block"]

LAYERGRAPH_KIND = "layergraph"
LAYERGRAPH_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and element type of a model input or output."""

    name: str
    shape: tuple[int, ...]
    """Concrete dimensions after ``--input-shape`` and shape inference."""
    dtype: str
    """NumPy name of the element type, e.g. ``float32``."""


@dataclass(frozen=True)
class ModelInfo:
    """Which model a graph (and everything derived from it) describes."""

    path: str
    sha256: str
    """Hash of the ONNX file as loaded; plans and profiles refer to the model by it."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    """The ``--input-shape`` overrides used, so the same graph can be rebuilt."""


@dataclass(frozen=True)
class Tensor:
    """A value flowing between blocks, or into/out of the model."""

    name: str
    producer: str | None
    """Block that computes it; ``None`` for a model input (supplied by the requester)."""
    consumers: tuple[str, ...]
    """Blocks that read it, in graph order (empty for a model output nobody else reads)."""
    shape: tuple[int, ...]
    dtype: str
    bytes: int
    """Size at its own dtype; the planner derives the quantized size from it."""
    is_model_output: bool = False
    """Returned to the requester, whatever else reads it."""


@dataclass(frozen=True)
class Block:
    """A unit of placement: one ONNX node or a group of them executed together."""

    name: str
    onnx_nodes: tuple[str, ...]
    """Names of the ONNX nodes in this block, in topological order."""
    op_types: tuple[str, ...]
    """Op type of each ONNX node, parallel to ``onnx_nodes``."""
    inputs: tuple[str, ...]
    """Tensors read from outside the block (other blocks or model inputs)."""
    outputs: tuple[str, ...]
    """Tensors the block produces that other blocks read or that leave the model."""
    macs: int
    """Multiply–accumulate operations of one inference (elementwise ops count one per element)."""
    weight_bytes: int
    """Bytes of the initializers the block reads (its parameters)."""
    output_bytes: int
    """Bytes of ``outputs``."""


@dataclass(frozen=True)
class LayerGraph:
    """Blocks in topological order, and the tensors between them."""

    model: ModelInfo
    granularity: Granularity
    blocks: tuple[Block, ...]
    tensors: tuple[Tensor, ...]
    _index: dict[str, int] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {b.name: i for i, b in enumerate(self.blocks)})

    # -- lookup ---------------------------------------------------------------------------------
    @cached_property
    def tensor_by_name(self) -> dict[str, Tensor]:
        return {t.name: t for t in self.tensors}

    def block(self, name: str) -> Block:
        """The block called ``name``; :class:`AssignmentError` if there is none."""
        try:
            return self.blocks[self._index[name]]
        except KeyError:
            raise AssignmentError(
                f"unknown block {name!r}",
                fix=f"use one of the {len(self.blocks)} block names listed by `qsplit analyze`",
            ) from None

    def position(self, name: str) -> int:
        """Index of a block in the topological order."""
        self.block(name)
        return self._index[name]

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.blocks)

    @property
    def total_macs(self) -> int:
        return sum(b.macs for b in self.blocks)

    @property
    def total_weight_bytes(self) -> int:
        return sum(b.weight_bytes for b in self.blocks)

    @cached_property
    def dag(self) -> nx.DiGraph:
        """Block-level DAG; edge attribute ``tensors`` lists the tensors carried."""
        g = nx.DiGraph()
        g.add_nodes_from(self.block_names)
        for t in self.tensors:
            if t.producer is None:
                continue
            for c in t.consumers:
                if g.has_edge(t.producer, c):
                    g.edges[t.producer, c]["tensors"].append(t.name)
                else:
                    g.add_edge(t.producer, c, tensors=[t.name])
        return g

    def boundary(self, members: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Tensors entering and leaving a set of blocks, in block order, without repeats."""
        inside = set(members)
        inputs: dict[str, None] = {}
        outputs: dict[str, None] = {}
        for name in sorted(inside, key=self.position):
            block = self.block(name)
            for t in block.inputs:
                if self.tensor_by_name[t].producer not in inside:
                    inputs[t] = None
            for t in block.outputs:
                tensor = self.tensor_by_name[t]
                if tensor.is_model_output or any(c not in inside for c in tensor.consumers):
                    outputs[t] = None
        return tuple(inputs), tuple(outputs)

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        m = self.model
        return {
            "model": {
                "path": m.path,
                "sha256": m.sha256,
                "inputs": [_spec_to_dict(s) for s in m.inputs],
                "outputs": [_spec_to_dict(s) for s in m.outputs],
                "input_shapes": {n: list(s) for n, s in m.input_shapes},
            },
            "granularity": self.granularity,
            "blocks": [
                {
                    "name": b.name,
                    "onnx_nodes": list(b.onnx_nodes),
                    "op_types": list(b.op_types),
                    "inputs": list(b.inputs),
                    "outputs": list(b.outputs),
                    "macs": b.macs,
                    "weight_bytes": b.weight_bytes,
                    "output_bytes": b.output_bytes,
                }
                for b in self.blocks
            ],
            "tensors": [
                {
                    "name": t.name,
                    "producer": t.producer,
                    "consumers": list(t.consumers),
                    "shape": list(t.shape),
                    "dtype": t.dtype,
                    "bytes": t.bytes,
                    "is_model_output": t.is_model_output,
                }
                for t in self.tensors
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerGraph:
        m = data["model"]
        model = ModelInfo(
            path=m["path"],
            sha256=m["sha256"],
            inputs=tuple(_spec_from_dict(s) for s in m["inputs"]),
            outputs=tuple(_spec_from_dict(s) for s in m["outputs"]),
            input_shapes=tuple((n, tuple(s)) for n, s in m.get("input_shapes", {}).items()),
        )
        blocks = tuple(
            Block(
                name=b["name"],
                onnx_nodes=tuple(b["onnx_nodes"]),
                op_types=tuple(b.get("op_types", ())),
                inputs=tuple(b.get("inputs", ())),
                outputs=tuple(b.get("outputs", ())),
                macs=int(b["macs"]),
                weight_bytes=int(b["weight_bytes"]),
                output_bytes=int(b["output_bytes"]),
            )
            for b in data["blocks"]
        )
        tensors = tuple(
            Tensor(
                name=t["name"],
                producer=t["producer"],
                consumers=tuple(t["consumers"]),
                shape=tuple(t["shape"]),
                dtype=t["dtype"],
                bytes=int(t["bytes"]),
                is_model_output=bool(t.get("is_model_output", False)),
            )
            for t in data["tensors"]
        )
        return cls(model=model, granularity=data["granularity"], blocks=blocks, tensors=tensors)

    def save(self, path: str) -> None:
        write_json(path, LAYERGRAPH_KIND, LAYERGRAPH_SCHEMA_VERSION, self.to_dict())

    @classmethod
    def load(cls, path: str) -> LayerGraph:
        return cls.from_dict(read_json(path, LAYERGRAPH_KIND, (LAYERGRAPH_SCHEMA_VERSION,)))


def _spec_to_dict(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}


def _spec_from_dict(data: dict[str, Any]) -> TensorSpec:
    return TensorSpec(name=data["name"], shape=tuple(data["shape"]), dtype=data["dtype"])
