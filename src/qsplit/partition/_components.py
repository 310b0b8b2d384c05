"""From a block→node assignment to components that can run one after another.

Same-node blocks are grouped with :func:`qsplit.model.acyclic_groups`: a node's blocks stay in
one component unless that would make the component graph cyclic (device → edge → device), and
independent branches on one node become separate components so each starts as soon as its own
inputs arrive.
"""

from __future__ import annotations

from collections.abc import Mapping

from qsplit.errors import AssignmentError
from qsplit.model import LayerGraph, acyclic_groups
from qsplit.partition._component import Component


def components(graph: LayerGraph, assignment: Mapping[str, str]) -> tuple[Component, ...]:
    """Split ``graph`` into components for ``assignment`` (block name → node name).

    Raises :class:`AssignmentError` when a block is missing from the assignment or an unknown
    block is named. The result is in a topological order of the component graph.
    """
    _check_assignment(graph, assignment)
    groups = acyclic_groups(graph.dag, graph.block_names, assignment)
    result = []
    for index, members in enumerate(groups):
        inputs, outputs = graph.boundary(members)
        result.append(
            Component(
                index=index,
                node=assignment[members[0]],
                blocks=tuple(members),
                inputs=inputs,
                outputs=outputs,
            )
        )
    return tuple(result)


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
