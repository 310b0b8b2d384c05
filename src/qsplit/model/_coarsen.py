"""Coarsening a node-granularity LayerGraph into blocks the planner can afford to place.

Two ways to group, chosen from the node names:

* **Module prefix.** Exporters from PyTorch name nodes after the module that made them
  (``/model.4/m.0/cv1/conv/Conv``); grouping by the first path segment (``model.4``) gives one
  block per network layer, which is what a user means by "layer" and what profiles add up over.
* **Chains.** Without such names, maximal single-input/single-output chains are contracted.

Either way the groups go through :func:`acyclic_groups`, so a module whose nodes are interleaved
with another's is split rather than producing a cyclic block graph.
"""

from __future__ import annotations

from collections.abc import Hashable

from qsplit.model._grouping import acyclic_groups
from qsplit.model._layergraph import Block, LayerGraph, Tensor

MIN_PREFIXED_FRACTION = 0.5
"""Below this share of nodes with a module prefix, names say too little: contract chains."""

MAX_BLOCK_MACS_FRACTION = 1 / 8
"""A module holding more of the model's MACs than this is split at the next prefix level: one
block that large (YOLO's detection head is ~30 %) leaves the planner no room to place it."""


def coarsen(
    graph: LayerGraph,
    *,
    prefix_depth: int = 1,
    max_block_macs_fraction: float = MAX_BLOCK_MACS_FRACTION,
) -> LayerGraph:
    """Group a node-granularity graph into blocks; a block-granularity graph is returned as is.

    ``prefix_depth`` is how many leading path segments of a node name form its module prefix
    (1 groups ``/model.4/...`` as ``model.4``); modules holding more than
    ``max_block_macs_fraction`` of the MACs are split one level deeper.
    """
    if graph.granularity == "block":
        return graph
    labels = _prefix_labels(graph, prefix_depth, max_block_macs_fraction)
    prefixed = sum(1 for v in labels.values() if v is not None)
    if prefixed < MIN_PREFIXED_FRACTION * len(graph.blocks):
        labels = {b: None for b in labels}
    labels = _contract_chains(graph, _adopt_unnamed(graph, labels))
    groups = acyclic_groups(graph.dag, graph.block_names, labels)
    names = _group_names(graph, groups, labels)
    return merge_blocks(graph, groups, names)


def _prefix_labels(graph: LayerGraph, depth: int, max_fraction: float) -> dict[str, Hashable]:
    """Module prefix of each node, one level deeper inside modules too large to place as one."""
    segments = {b.name: b.name.strip("/").split("/") for b in graph.blocks}
    limit = max_fraction * graph.total_macs
    deepened: set[str] = set()
    while True:
        labels: dict[str, Hashable] = {}
        for name, parts in segments.items():
            d = depth
            while d < len(parts) - 1 and "/".join(parts[:d]) in deepened:
                d += 1
            labels[name] = "/".join(parts[:d]) if len(parts) > d else None
        macs: dict[str, int] = {}
        splittable: set[str] = set()
        for block in graph.blocks:
            label = labels[block.name]
            if label is None:
                continue
            macs[label] = macs.get(label, 0) + block.macs
            if len(segments[block.name]) > str(label).count("/") + 2:
                splittable.add(str(label))  # some node sits in a sub-module of it
        too_large = {label for label in splittable if macs[label] > limit} - deepened
        if not too_large:
            return labels
        deepened |= too_large


def _adopt_unnamed(graph: LayerGraph, labels: dict[str, Hashable]) -> dict[str, Hashable]:
    """Give an unlabelled node the module label of its surroundings when every node around it
    that has a label has the same one and all its readers do.

    Exporters leave some nodes of a module unnamed (torchvision's Swin computes its shifted-window
    mask with ``Shape_3091``, ``Reshape_3116`` … in the middle of the attention module). Left
    unlabelled they sit between two parts of one module, the module's group becomes cyclic and is
    cut into pieces at every such node (one Swin stage: 28 blocks instead of one). Nodes are
    visited readers first, so a chain of unnamed nodes (Shape → Gather → Concat) is adopted whole.
    """
    dag = graph.dag
    result = dict(labels)
    for name in reversed(graph.block_names):
        if result[name] is not None:
            continue
        readers = {result[s] for s in dag.successors(name)}
        producers = {result[p] for p in dag.predecessors(name)} - {None}
        if len(readers) == 1 and None not in readers and producers <= readers:
            result[name] = next(iter(readers))
    return result


def _contract_chains(graph: LayerGraph, labels: dict[str, Hashable]) -> dict[str, Hashable]:
    """Give unlabelled nodes the label of their chain: a node continues its predecessor's chain
    when that predecessor is unlabelled too and feeds nothing else."""
    dag = graph.dag
    result: dict[str, Hashable] = {}
    for name in graph.block_names:
        if labels[name] is not None:
            result[name] = ("prefix", labels[name])
            continue
        preds = list(dag.predecessors(name))
        if len(preds) == 1 and labels[preds[0]] is None and dag.out_degree(preds[0]) == 1:
            result[name] = result[preds[0]]
        else:
            result[name] = ("chain", name)
    return result


def _group_names(
    graph: LayerGraph, groups: list[list[str]], labels: dict[str, Hashable]
) -> list[str]:
    taken: dict[str, int] = {}
    names = []
    for members in groups:
        kind, value = labels[members[0]]  # type: ignore[misc]
        base = str(value) if kind == "prefix" else members[0]
        taken[base] = taken.get(base, 0) + 1
        names.append(base if taken[base] == 1 else f"{base}#{taken[base]}")
    return names


def merge_blocks(graph: LayerGraph, groups: list[list[str]], names: list[str]) -> LayerGraph:
    """A block-granularity graph with one block per group (named by `names`); tensors internal
    to a group disappear, the others are re-attached to the groups that produce and read them."""
    owner = {
        member: name for name, members in zip(names, groups, strict=True) for member in members
    }
    blocks = []
    for name, members in zip(names, groups, strict=True):
        parts = [graph.block(m) for m in members]
        inputs, outputs = graph.boundary(members)
        blocks.append(
            Block(
                name=name,
                onnx_nodes=tuple(n for p in parts for n in p.onnx_nodes),
                op_types=tuple(o for p in parts for o in p.op_types),
                inputs=inputs,
                outputs=outputs,
                macs=sum(p.macs for p in parts),
                weight_bytes=sum(p.weight_bytes for p in parts),
                output_bytes=sum(graph.tensor_by_name[t].bytes for t in outputs),
            )
        )
    crossing = {t for b in blocks for t in b.outputs}
    tensors = []
    for t in graph.tensors:
        if t.producer is not None and t.name not in crossing:
            continue
        producer = owner[t.producer] if t.producer is not None else None
        consumers = tuple(dict.fromkeys(owner[c] for c in t.consumers if owner[c] != producer))
        tensors.append(
            Tensor(
                name=t.name,
                producer=producer,
                consumers=consumers,
                shape=t.shape,
                dtype=t.dtype,
                bytes=t.bytes,
                is_model_output=t.is_model_output,
            )
        )
    return LayerGraph(
        model=graph.model, granularity="block", blocks=tuple(blocks), tensors=tuple(tensors)
    )
