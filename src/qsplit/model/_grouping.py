"""Group DAG vertices by a label without creating cycles between the groups.

Both coarsening (label = module prefix) and partitioning (label = assigned node) need the same
thing: put same-label vertices together, as few groups as possible, such that the graph of groups
stays acyclic, so that groups can run one after another.

Grouping every label whole can create a cycle (label A → B → A). For the labels caught in such a
cycle we label each vertex with its *stage*: the number of label changes on the longest path that
reaches it, ``stage(v) = max over predecessors p of stage(p) + [label(p) ≠ label(v)]``. Every edge
between (label, stage) groups goes to a strictly larger stage, so those groups cannot form a
cycle; labels not caught in a cycle stay whole. A vertex without predecessors (a constant
generator) takes instead the latest stage its successors allow, ``min over successors s of
stage(s) − [label(s) ≠ label(v)]``: the same guarantee holds, and a constant joins the group of
the vertex that reads it rather than stage 0, where it would stand alone (a model exported with
its weights as Constant nodes was split into hundreds of one-Constant components). Groups are
then split into weakly connected pieces so that independent branches stay independent.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import networkx as nx


def acyclic_groups(
    dag: nx.DiGraph, order: Sequence[str], label: Mapping[str, Hashable]
) -> list[list[str]]:
    """Groups of same-label vertices, acyclic between them, in a topological order.

    ``order`` is a topological order of ``dag``; each group lists its vertices in that order, and
    groups are sorted topologically, ties broken by their first vertex.
    """
    position = {v: i for i, v in enumerate(order)}
    split_labels: set[Hashable] = set()
    while True:
        key = _keys(dag, order, label, split_labels)
        groups = _pieces(dag, order, key)
        quotient = _quotient(dag, groups)
        cyclic = [c for c in nx.strongly_connected_components(quotient) if len(c) > 1]
        if not cyclic:
            break
        split_labels.update(label[groups[g][0]] for c in cyclic for g in c)
    ranked = nx.lexicographical_topological_sort(quotient, key=lambda g: position[groups[g][0]])
    return [groups[g] for g in ranked]


def _keys(
    dag: nx.DiGraph, order: Sequence[str], label: Mapping[str, Hashable], split: set[Hashable]
) -> dict[str, tuple[Hashable, int]]:
    stage: dict[str, int] = {}
    for v in order:
        stage[v] = max((stage[p] + (label[p] != label[v]) for p in dag.predecessors(v)), default=0)
    for v in order:
        if dag.in_degree(v) == 0:  # a source (e.g. a Constant) runs as late as its readers allow
            stage[v] = min(
                (stage[s] - (label[s] != label[v]) for s in dag.successors(v)), default=0
            )
    return {v: (label[v], stage[v] if label[v] in split else -1) for v in order}


def _pieces(
    dag: nx.DiGraph, order: Sequence[str], key: Mapping[str, tuple[Hashable, int]]
) -> list[list[str]]:
    members: dict[tuple[Hashable, int], list[str]] = {}
    for v in order:
        members.setdefault(key[v], []).append(v)
    position = {v: i for i, v in enumerate(order)}
    pieces = []
    for group in members.values():
        for piece in nx.weakly_connected_components(dag.subgraph(group)):
            pieces.append(sorted(piece, key=position.__getitem__))
    return pieces


def _quotient(dag: nx.DiGraph, groups: list[list[str]]) -> nx.DiGraph:
    group_of = {v: g for g, members in enumerate(groups) for v in members}
    quotient = nx.DiGraph()
    quotient.add_nodes_from(range(len(groups)))
    quotient.add_edges_from(
        (group_of[u], group_of[v]) for u, v in dag.edges if group_of[u] != group_of[v]
    )
    return quotient
