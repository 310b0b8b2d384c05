"""Components: maximal groups of same-node blocks that run as one ONNX submodel."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    """A connected group of blocks placed on one node, run as one standalone ONNX model.

    Components are numbered in a topological order of the component graph: every input of
    component ``i`` is a model input or an output of a component ``j < i``.
    """

    index: int
    node: str
    """Name of the node (machine) that runs it."""
    blocks: tuple[str, ...]
    """Block names, in the LayerGraph's topological order."""
    inputs: tuple[str, ...]
    """Tensors it reads from model inputs or from other components."""
    outputs: tuple[str, ...]
    """Tensors it produces that other components read or that are model outputs."""

    @property
    def name(self) -> str:
        return f"c{self.index}_{self.node}"
