"""What gets deployed: each component's ONNX bytes and hash, and where its outputs go.

A :class:`Deployment` is built once on the requesting side from a model, an assignment and the
infrastructure. It holds everything an agent needs to run its components and push outputs
*directly* to the consuming nodes, so no coordinator sits on the data path. Where two nodes have
no direct link, the data follows the infrastructure's route (:meth:`Infra.route`): the
deployment names the nodes whose agents relay it (:attr:`Deployment.relays`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from qsplit.errors import InputError
from qsplit.infra import Infra
from qsplit.model import LayerGraph, LoadedModel, Preprocess, TensorSpec, analyze, load_model
from qsplit.partition import (
    Component,
    ComponentExtractor,
    check_nodes,
    components,
    read_assignment,
)
from qsplit.plan import Plan
from qsplit.profile import ComputeProfile, reference_inputs, reference_values
from qsplit.runtime._quantized import CalibrationSource, quant_params, quantized_model
from qsplit.runtime._wire import CODECS, Quant


@dataclass(frozen=True)
class ComponentSpec:
    """One component as an agent receives it."""

    name: str
    node: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    onnx: bytes
    """The standalone ONNX model (fp32, or QDQ int8 for a plan's quantized blocks)."""
    sha256: str
    """Hex digest of :attr:`onnx`; the agent refuses the component if it does not match."""
    routes: Mapping[str, tuple[str, ...]]
    """Output tensor → nodes with a component that reads it (may include this node)."""
    returns: tuple[str, ...]
    """Outputs that are model outputs, returned to the requester."""
    quant: Mapping[str, Quant] = field(default_factory=dict)
    """Scale and zero point of the int8 outputs (those of quantized blocks), sent with them."""
    codecs: Mapping[str, str] = field(default_factory=dict)
    """Output → the lossless codec its frames are compressed with on links (the plan's
    ``link_codec``); never applied to a tensor handed over in shared memory."""
    compute_s: float | None = None
    """The node's profiled time for this component (the sum of its blocks' timings at their
    precision), when the deployment was built with profiles. An agent that emulates a slower
    node runs the component in exactly this time; one that does not ignores it."""
    reference: Mapping[str, np.ndarray] = field(default_factory=dict)
    """The component's inputs in the reference run of the whole model (on the first calibration
    image), for a component without :attr:`compute_s`: an agent emulating a slower node times
    it on them at deploy, values it can receive. Empty when it has a ``compute_s``, or when the
    model fails on its reference input (such an agent then refuses the component)."""


@dataclass(frozen=True)
class Deployment:
    """A split model placed on nodes, ready to ship to their agents."""

    id: str
    """Hash of every component's hash and node, and of the relays: agents keep deployments apart
    by it."""
    components: tuple[ComponentSpec, ...]
    model_inputs: Mapping[str, tuple[str, ...]]
    """Model input → nodes that read it (the requester sends each input once per node)."""
    model_outputs: tuple[str, ...]
    input_specs: tuple[TensorSpec, ...]
    """Name, shape and dtype of each model input (what a requester must supply)."""
    addresses: Mapping[str, str]
    """Node → ``host:port`` of its agent, for every node that runs a component or relays."""
    quantized: tuple[str, ...] = ()
    """Blocks deployed in int8."""
    relays: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    """(sender node, receiver node) → the nodes whose agents store and forward its data, in
    order, for every transfer of this deployment without a direct link (the device stands for
    the requester: model inputs leave from it and outputs return to it)."""
    codecs: Mapping[str, str] = field(default_factory=dict)
    """Tensor crossing links → its codec, for every component output and model input the plan
    compresses (the requester compresses the model inputs)."""

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.node for c in self.components))


def build_deployment(
    model_path: str | Path,
    assignment: Mapping[str, str],
    infra: Infra,
    *,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    quantized: Collection[str] = (),
    calibration: CalibrationSource = None,
    preprocess: Preprocess | None = None,
    profiles: Mapping[str, ComputeProfile] | None = None,
    link_precision: Mapping[str, str] | None = None,
    link_codec: Mapping[str, str] | None = None,
    agents: bool = True,
) -> Deployment:
    """Split ``model_path`` by ``assignment`` (block → node) for the agents named in ``infra``.

    ``quantized`` blocks run in static int8 and send their outputs as int8; ``link_precision``
    (tensor → fp16|int8) makes those tensors cross links at that precision; ``calibration``
    gives the activation ranges for both, from images prepared by ``preprocess`` (see
    :func:`qsplit.runtime.quantized_model`). ``link_codec`` (tensor → lz4|zstd) makes every
    sender compress those tensors on links (after their link precision).
    ``profiles`` (node → its compute profile of this model) give each component its
    :attr:`ComponentSpec.compute_s`, the time an emulated node takes for it.
    ``agents=False`` builds the components for a runtime without agents (``qsplit.serve``, on
    Ray): nodes then need no address, and :attr:`Deployment.addresses` holds those given.
    """
    check_nodes(assignment, infra.node_names, source=infra.source)
    model, graph = analyze(str(model_path), input_shapes)
    timed = _component_times(graph, profiles or {}, frozenset(quantized))
    original = graph
    if quantized or link_precision:
        model, graph = quantized_model(
            model, graph, quantized, calibration, preprocess, link_precision
        )
    parts = components(graph, dict(assignment))
    codecs = _crossing_codecs(original, model, link_codec or {})
    extractor = ComponentExtractor(model, graph)
    # Only agents emulating a slower node time components on reference inputs.
    untimed = [p for p in parts if timed(p.node, p.blocks) is None] if agents else []
    reference = _reference(model, graph, calibration, preprocess, untimed)
    readers: dict[str, list[str]] = {}
    for part in parts:
        for tensor in part.inputs:
            readers.setdefault(tensor, []).append(part.node)
    model_outputs = tuple(o.name for o in graph.model.outputs)
    model_inputs = {
        i.name: tuple(dict.fromkeys(readers.get(i.name, ()))) for i in graph.model.inputs
    }
    specs = []
    for part in parts:
        onnx_model = extractor.extract(part)
        onnx_bytes = onnx_model.SerializeToString()
        compute_s = timed(part.node, part.blocks)
        specs.append(
            ComponentSpec(
                name=part.name,
                node=part.node,
                inputs=part.inputs,
                outputs=part.outputs,
                onnx=onnx_bytes,
                sha256=hashlib.sha256(onnx_bytes).hexdigest(),
                routes={t: tuple(dict.fromkeys(readers.get(t, ()))) for t in part.outputs},
                returns=tuple(t for t in part.outputs if t in model_outputs),
                quant=quant_params(onnx_model, part.outputs),
                codecs={t: codecs[t] for t in part.outputs if t in codecs},
                compute_s=compute_s,
                reference={} if compute_s is not None else _only(reference, part.inputs),
            )
        )
    transfers = {(s.node, n) for s in specs for nodes in s.routes.values() for n in nodes}
    transfers |= {(s.node, infra.device) for s in specs if s.returns}
    transfers |= {(infra.device, n) for nodes in model_inputs.values() for n in nodes}
    routes = {(a, b): infra.route(a, b) for a, b in sorted(transfers) if a != b}
    relays = {pair: route.via for pair, route in routes.items() if route.via}
    addresses = {}
    relaying = (n for via in relays.values() for n in via)
    for node in dict.fromkeys([*(s.node for s in specs), *relaying]):
        address = infra.node(node).address
        if address is None and not agents:
            continue
        if address is None:
            raise InputError(
                f"node {node!r} runs components or relays their data but has no agent address",
                file=infra.source,
                field="nodes",
                fix=f"add address: HOST:PORT to node {node!r} and start `qsplit agent` there",
            )
        addresses[node] = address
    return Deployment(
        id=_identity(specs, relays, addresses),
        components=tuple(specs),
        model_inputs=model_inputs,
        model_outputs=model_outputs,
        input_specs=graph.model.inputs,
        addresses=addresses,
        quantized=tuple(b for b in graph.block_names if b in set(quantized)),
        relays=relays,
        codecs={t: c for t, c in codecs.items() if t in model_inputs or t in readers},
    )


def _identity(
    specs: Sequence[ComponentSpec],
    relays: Mapping[tuple[str, str], tuple[str, ...]],
    addresses: Mapping[str, str],
) -> str:
    """A deployment's id. Routes and the agents' addresses are part of what agents hold (where
    to push), so they are part of it: two devices sharing an edge deploy two deployments
    there."""
    placed = "".join(
        f"{s.node}:{s.sha256}:{s.compute_s}:{sorted(s.codecs.items())};" for s in specs
    )
    relayed = "".join(f"{a}>{b}:{','.join(via)};" for (a, b), via in relays.items())
    reached = "".join(f"{node}@{address};" for node, address in sorted(addresses.items()))
    return hashlib.sha256((placed + relayed + reached).encode()).hexdigest()[:16]


def renamed_deployment(
    deployment: Deployment, names: Mapping[str, str], addresses: Mapping[str, str]
) -> Deployment:
    """The same components under other node names (``names``: old → new; others kept) and
    agents (``addresses``: new name → ``host:port``, for every node of the result): one
    device class's deployment, built once, given to each of its devices, which are nodes of
    their own (a fleet's devices behind gateway agents, ``qsplit.serve``)."""

    def name(node: str) -> str:
        return names.get(node, node)

    def nodes(values: Sequence[str]) -> tuple[str, ...]:
        return tuple(name(n) for n in values)

    specs = tuple(
        replace(
            s,
            node=name(s.node),
            routes={t: nodes(readers) for t, readers in s.routes.items()},
        )
        for s in deployment.components
    )
    relays = {(name(a), name(b)): nodes(via) for (a, b), via in deployment.relays.items()}
    used = {s.node for s in specs} | {n for via in relays.values() for n in via}
    missing = sorted(used - set(addresses))
    if missing:
        raise InputError(
            f"no agent address for node(s) {', '.join(missing)} of the renamed deployment",
            field="addresses",
            fix="give an address for every node that runs a component or relays",
        )
    placed = {n: addresses[n] for n in sorted(used)}
    return replace(
        deployment,
        id=_identity(specs, relays, placed),
        components=specs,
        model_inputs={t: nodes(readers) for t, readers in deployment.model_inputs.items()},
        addresses=placed,
        relays=relays,
    )


def _crossing_codecs(
    original: LayerGraph, model: LoadedModel, link_codec: Mapping[str, str]
) -> dict[str, str]:
    """Tensor of the deployed model → codec, for the plan's ``link_codec`` (keyed by the
    original model's tensors): a tensor crossing at a lower precision is the output of its
    encode node (a QuantizeLinear or Cast the surgery added), and takes the original's codec."""
    problems = [
        f"{t!r}: codec {c!r} is not one of {', '.join(CODECS)}"
        for t, c in link_codec.items()
        if c not in CODECS
    ] + [
        f"{t!r} is not a tensor of the model"
        for t in link_codec
        if t not in original.tensor_by_name
    ]
    if problems:
        raise InputError(
            f"{len(problems)} link codec(s) cannot be applied: " + "; ".join(problems),
            field="link_codec",
            fix="re-plan with this model (link codecs name its tensors; lz4 or zstd)",
        )
    codecs = {}
    for node in model.proto.graph.node:
        for output in node.output:
            source = output
            if output not in original.tensor_by_name and node.op_type in _ENCODERS:
                source = node.input[0]
            if source in link_codec:
                codecs[output] = link_codec[source]
    codecs.update(
        {i.name: link_codec[i.name] for i in model.proto.graph.input if i.name in link_codec}
    )
    return codecs


_ENCODERS = frozenset({"QuantizeLinear", "Cast"})
"""Ops the link surgery and the block quantizer put on a tensor before it crosses a link."""


def _reference(
    model: LoadedModel,
    graph: LayerGraph,
    calibration: CalibrationSource,
    preprocess: Preprocess | None,
    parts: Sequence[Component],
) -> dict[str, np.ndarray]:
    """What ``parts`` read in the reference run (nothing if the model raises on its reference
    input: such a model can still be deployed to agents that need no deploy-time timing)."""
    needed = {t for part in parts for t in part.inputs}
    if not needed:
        return {}
    inputs = reference_inputs(model, calibration, preprocess=preprocess)
    try:
        return reference_values(model, graph, inputs, needed)
    except Exception:  # ORT's own error types, raised by the model on this input
        return {}


def _only(values: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    return {name: values[name] for name in names if name in values}


def _component_times(
    graph: LayerGraph, profiles: Mapping[str, ComputeProfile], quantized: frozenset[str]
) -> Callable[[str, Sequence[str]], float | None]:
    """``(node, blocks) →`` the node's profiled time for those blocks (``None`` without a
    profile for the node), after checking each profile is of this model and covers it."""
    for node, profile in profiles.items():
        missing = [b for b in graph.block_names if b not in profile.blocks]
        if profile.model_sha256 != graph.model.sha256 or missing:
            raise InputError(
                f"the compute profile of {node!r} is not of this model at this granularity",
                field="profiles",
                fix="profile the deployed model on that node (same file, same granularity)",
            )

    def timed(node: str, blocks: Sequence[str]) -> float | None:
        profile = profiles.get(node)
        if profile is None:
            return None
        timings = (profile.blocks[b] for b in blocks)
        return sum(
            t.int8_s if b in quantized and t.int8_s is not None else t.fp32_s
            for b, t in zip(blocks, timings, strict=True)
        )

    return timed


def load_deployment(
    plan_path: str | Path,
    infra: Infra,
    model_path: str | Path,
    *,
    calibration: CalibrationSource = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    preprocess: Preprocess | None = None,
    profiles: Mapping[str, ComputeProfile] | None = None,
    agents: bool = True,
) -> Deployment:
    """The deployment of a plan file: its assignment, with its quantized blocks in int8 and its
    link precisions and codecs (calibrated on ``calibration`` prepared by ``preprocess``), each
    component timed by ``profiles`` if given, for agents or not (``agents``; see
    :func:`build_deployment`). The model must be the one the plan was made for.

    Dynamic input dimensions take the shapes the plan records; ``input_shapes`` (as given to
    ``--input-shape``) are for plans that record none, and must agree with those it does.
    """
    plan = Plan.load(plan_path)
    shapes = _plan_input_shapes(plan, plan_path, input_shapes or {})
    # A missing file or a folder: one clear line.
    digest = load_model(model_path, shapes).info.sha256
    if digest != plan.model_sha256:
        raise InputError(
            f"model {model_path} (sha256 {digest[:12]}…) is not the plan's model "
            f"(sha256 {plan.model_sha256[:12]}…)",
            file=plan_path,
            field="model.sha256",
            fix="pass the model file the plan was made for",
        )
    return build_deployment(
        model_path,
        read_assignment(plan_path),
        infra,
        input_shapes=shapes,
        quantized=plan.quantized,
        calibration=calibration,
        preprocess=preprocess,
        profiles=profiles,
        link_precision=plan.link_precision,
        link_codec=plan.link_codec,
        agents=agents,
    )


def _plan_input_shapes(
    plan: Plan, plan_path: str | Path, given: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """The input shapes to deploy ``plan`` at: those it records, and ``given`` for the others.

    A given shape that differs from the recorded one would deploy components the plan was not
    priced for (or that do not fit each other), so it is refused.
    """
    for name, shape in given.items():
        recorded = plan.input_shapes.get(name)
        if recorded is not None and recorded != shape:
            raise InputError(
                f"--input-shape {name}={_dims(shape)} differs from the plan's "
                f"{name}={_dims(recorded)}",
                file=plan_path,
                field="model.input_shapes",
                fix=f"drop --input-shape (the plan's shape is used) or re-plan at {_dims(shape)}",
            )
    return {**given, **plan.input_shapes}


def _dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))
