"""What a fleet plan serves on its shared nodes, for emulated fleet runs and real devices alike.

A shared component is identified by its node and its blocks: classes whose plans put the same
blocks on the same node run the *same* component, with one batcher, so their requests batch
together. Each shared node is one Serve application (:class:`~qsplit.serve._node.NodeReplica`)
hosting its components; :func:`node_arguments` gives its arguments as plain values. Ray is not
imported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsplit.errors import InputError
from qsplit.fleet import ClassDeployment, Fleet, FleetDeployment
from qsplit.model import LayerGraph
from qsplit.partition import components
from qsplit.profile import ComputeProfile
from qsplit.runtime import ComponentSpec, Deployment, build_deployment

Shared = Mapping[tuple[str, tuple[str, ...]], "SharedComponent"]
"""(node, blocks) → the component the node serves for them."""


@dataclass(frozen=True)
class SharedComponent:
    """A shared component as deployed: one per node and blocks, whichever classes use it."""

    key: str
    """Its name in its node's application (blocks and int8 blocks, digested)."""
    spec: ComponentSpec
    fixed_fraction: float
    """The part of its time a batch shares (``qsplit.fleet.BatchProfile``)."""
    sha256s: tuple[str, ...]
    """The digests of every class's bytes for it: what a gateway agent deploys
    (:class:`~qsplit.serve.FleetNodeHost`)."""
    classes: tuple[str, ...]
    """The classes whose plans run it."""


def component_key(blocks: Sequence[str], quantized: Collection[str]) -> str:
    """A shared component's name in its node's application: what any process serving or
    calling the plan computes alike."""
    int8 = [b for b in blocks if b in quantized]
    return hashlib.sha256(("|".join(blocks) + "/" + "|".join(int8)).encode()).hexdigest()[:12]


def class_deployment(
    c: ClassDeployment,
    fleet: Fleet,
    model: str | Path,
    *,
    quantized: Collection[str] = (),
    calibration: Any = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    profiles: Mapping[str, ComputeProfile] | None = None,
) -> Deployment:
    """The class's plan split for it, as served on Ray (no agent addresses); with
    ``profiles`` (node or class → profile), every component carries its profiled time."""
    infra = fleet.class_infra(c.name)
    return build_deployment(
        model,
        c.assignment,
        infra,
        input_shapes=dict(input_shapes) if input_shapes else None,
        quantized=quantized,
        calibration=calibration,
        profiles={n.name: profiles[n.name] for n in infra.nodes} if profiles else None,
        agents=False,
    )


def class_components(
    built: Deployment, graph: LayerGraph, c: ClassDeployment
) -> list[tuple[ComponentSpec, tuple[str, ...]]]:
    """Each component of the class's deployment with its blocks (the same split, in order)."""
    parts = components(graph, dict(c.assignment))
    if [p.name for p in parts] != [s.name for s in built.components]:
        raise AssertionError(f"class {c.name!r}: the deployment's split is not the plan's")
    return [(spec, part.blocks) for spec, part in zip(built.components, parts, strict=True)]


def shared_components(
    deployment: FleetDeployment,
    built: Mapping[str, Deployment],
    graph: LayerGraph,
    quantized: Collection[str],
    fixed_fraction: Callable[[str, tuple[str, ...]], float],
) -> dict[tuple[str, tuple[str, ...]], SharedComponent]:
    """(node, blocks) → the shared component, once for all the classes that run it
    (``built``: each class's plan split for it; ``fixed_fraction``: of a node's blocks)."""
    planned = {s.node for s in deployment.shared}
    found: dict[tuple[str, tuple[str, ...]], list[tuple[str, ComponentSpec]]] = {}
    for c in deployment.classes:
        for spec, blocks in class_components(built[c.name], graph, c):
            if spec.node == c.name:
                continue
            if spec.node not in planned:
                raise InputError(
                    f"class {c.name!r} runs blocks on {spec.node!r}, which the fleet plan "
                    "gives no replicas",
                    file=deployment.source,
                    field="shared",
                    fix="plan the fleet again (`qsplit fleet plan`)",
                )
            found.setdefault((spec.node, blocks), []).append((c.name, spec))
    return {
        (node, blocks): SharedComponent(
            component_key(blocks, quantized),
            users[0][1],
            fixed_fraction(node, blocks),
            tuple(dict.fromkeys(spec.sha256 for _, spec in users)),
            tuple(name for name, _ in users),
        )
        for (node, blocks), users in found.items()
    }


def node_arguments(
    shared: Shared,
    deployment: FleetDeployment,
    applications: Mapping[str, str],
    threads: int,
    optimize: bool,
    *,
    emulated: bool = True,
) -> list[tuple[str, dict[str, Any]]]:
    """Each shared node as a Serve application: the arguments of its
    :class:`~qsplit.serve._node.NodeReplica` (components, slots, batching), plain values.
    ``emulated``: each batch padded to the node's profiled time; otherwise it takes what it
    takes (a real node)."""
    nodes = {s.node: s for s in deployment.shared}
    return [
        (
            application,
            {
                "node": node,
                "components": [
                    {
                        "key": s.key,
                        "onnx": s.spec.onnx,
                        "inputs": list(s.spec.inputs),
                        "outputs": list(s.spec.outputs),
                        "compute_s": s.spec.compute_s if emulated else 0.0,
                        "fixed_fraction": s.fixed_fraction,
                        "sha256s": list(s.sha256s),
                    }
                    for (n, _), s in shared.items()
                    if n == node
                ],
                "slots": nodes[node].replicas,
                "max_batch_size": nodes[node].batch_size,
                "batch_wait_timeout_s": nodes[node].batch_wait_s,
                "threads": threads,
                "optimize": optimize,
            },
        )
        for node, application in applications.items()
    ]
