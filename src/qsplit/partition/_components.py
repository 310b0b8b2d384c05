"""From a block→node assignment to components that can run one after another.

Grouping every block of a node into one submodel can make the component graph cyclic (device →
edge → device): the device's group would wait for itself. We label each block with a *stage*: the
number of node changes on the longest path that reaches it,

    stage(b) = max over predecessors p of  stage(p) + [node(p) ≠ node(b)]   (0 without any),

and group blocks by (node, stage), split into weakly connected pieces. Every edge between two
groups then goes to a strictly larger stage, so the component graph is acyclic by construction,
and the number of stages per node is the least any valid split needs along the longest path.
Splitting a group into its connected pieces keeps independent branches independent, so they can
start as soon as their own inputs arrive.
"""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx

from qsplit.errors import AssignmentError
from qsplit.model._layergraph import LayerGraph
from qsplit.partition._component import Component


def components(graph: LayerGraph, assignment: Mapping[str, str]) -> tuple[Component, ...]:
    """Split ``graph`` into components for ``assignment`` (block name → node name).

    Raises :class:`AssignmentError` when a block is missing from the assignment or an unknown
    block is named. The result is in a topological order of the component graph.
    """
    _check_assignment(graph, assignment)
    dag = graph.dag
    stage: dict[str, int] = {}
    for block in graph.blocks:  # blocks are in topological order
        node = assignment[block.name]
        stage[block.name] = max(
            (stage[p] + (assignment[p] != node) for p in dag.predecessors(block.name)),
            default=0,
        )

    groups: dict[tuple[str, int], list[str]] = {}
    for block in graph.blocks:
        groups.setdefault((assignment[block.name], stage[block.name]), []).append(block.name)

    pieces: list[tuple[int, int, str, list[str]]] = []
    for (node, level), members in groups.items():
        sub = dag.subgraph(members)
        for piece in nx.weakly_connected_components(sub):
            ordered = sorted(piece, key=graph.position)
            pieces.append((level, graph.position(ordered[0]), node, ordered))
    pieces.sort(key=lambda p: (p[0], p[1]))

    result = []
    for index, (_, _, node, members) in enumerate(pieces):
        inputs, outputs = _boundary(graph, set(members))
        result.append(
            Component(index=index, node=node, blocks=tuple(members), inputs=inputs, outputs=outputs)
        )
    return tuple(result)


def _boundary(graph: LayerGraph, members: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Tensors entering and leaving a set of blocks, in block order, without repeats."""
    inputs: dict[str, None] = {}
    outputs: dict[str, None] = {}
    tensors = graph.tensor_by_name
    for name in sorted(members, key=graph.position):
        block = graph.block(name)
        for t in block.inputs:
            if tensors[t].producer not in members:
                inputs[t] = None
        for t in block.outputs:
            tensor = tensors[t]
            if tensor.is_model_output or any(c not in members for c in tensor.consumers):
                outputs[t] = None
    return tuple(inputs), tuple(outputs)


def _check_assignment(graph: LayerGraph, assignment: Mapping[str, str]) -> None:
    known = set(graph.block_names)
    unknown = sorted(set(assignment) - known)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:3]) + (" …" if len(unknown) > 3 else "")
        raise AssignmentError(
            f"assignment names {len(unknown)} unknown block(s): {shown}",
            field="assignment",
            fix="use the block names listed by `qsplit analyze` at the same granularity",
        )
    missing = [b for b in graph.block_names if b not in assignment]
    if missing:
        raise AssignmentError(
            f"{len(missing)} block(s) have no node, first {missing[0]!r}",
            field="assignment",
            fix="assign every block to a node",
        )
