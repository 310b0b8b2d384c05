"""Converting the prototype's measurements into qsplit's value objects.

Facts the conversion relies on, checked against the published data:

* Sizes are in MiB although the prototype calls them MB: the 1×3×640×640 float32 input
  ``images`` is listed as 4.6875, which is 4,915,200 bytes / 2^20. Bytes = MB · 2^20.
* ``flops`` counts two operations per multiply–accumulate; ``Block.macs`` is half of it.
* The virtual ``generator`` node (``InputGenerator``) stands for the requesting device's input
  and the ``receiver`` node (``OutputReceiver``) for the result returned to it. qsplit has no
  such blocks: a tensor without producer is a model input, and tensors that reach the receiver
  are flagged ``is_model_output``. The prototype's 654 graph nodes are therefore 652 blocks.
* The prototype records tensor sizes but not shapes or element types; tensors get shape ``()``
  and dtype ``float32`` (every tensor in the YOLO graphs is float32 and at least 48 KiB).
* Exec profiles hold medians (``nq_med_time``, ``q_med_time``) in seconds; medians are used.
"""

from __future__ import annotations

import ast
from typing import Any

import networkx as nx

from qsplit.errors import InputError
from qsplit.model import Block, LayerGraph, ModelInfo, Tensor, TensorSpec
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.prototype._files import ROLES, PrototypeFiles
from qsplit.quant import NoisePolynomial, NoiseTerm

MIB_BYTES = 2**20
"""The prototype's "MB"."""

_DTYPE = "float32"
_WHOLE_MODEL_KEYS = ("WholeModel", "MixedModel", "TotalSum")
"""Exec-profile entries that time the whole model rather than one node."""


def to_layergraph(files: PrototypeFiles) -> LayerGraph:
    """The node-granularity LayerGraph of the prototype's model profile."""
    doc = files.graph
    where = files.model_profile_path
    dag = nx.DiGraph()
    attrs: dict[str, dict[str, Any]] = {}
    virtual_sources: set[str] = set()
    virtual_sinks: set[str] = set()
    for node in doc["nodes"]:
        name = node.get("id")
        if not isinstance(name, str):
            raise InputError("a node has no string 'id'", file=where, field="graph.nodes")
        if node.get("generator"):
            virtual_sources.add(name)
        elif node.get("receiver"):
            virtual_sinks.add(name)
        else:
            attrs[name] = node
            dag.add_node(name, idx=int(node.get("idx", 0)))

    producer: dict[str, str | None] = {}
    size_bytes: dict[str, int] = {}
    for tensor, (source, size_mb) in doc["graph"]["tensor_size_dict"].items():
        producer[tensor] = None if source in virtual_sources else source
        size_bytes[tensor] = _mib_to_bytes(size_mb)

    consumers: dict[str, list[str]] = {t: [] for t in producer}
    model_outputs: set[str] = set()
    for link in doc["links"]:
        source, target = link["source"], link["target"]
        for tensor in link["tensor_name_list"]:
            if tensor not in producer:
                raise InputError(
                    f"link {source} → {target} carries unknown tensor {tensor!r}",
                    file=where,
                    field="graph.links",
                    fix="regenerate the model profile",
                )
            if target in virtual_sinks:
                model_outputs.add(tensor)
            elif target not in attrs:
                raise InputError(
                    f"link to unknown node {target!r}", file=where, field="graph.links"
                )
            else:
                consumers[tensor].append(target)
                if source in attrs:
                    dag.add_edge(source, target)

    if not nx.is_directed_acyclic_graph(dag):
        raise InputError("the graph has a cycle", file=where, fix="regenerate the model profile")
    order = list(nx.lexicographical_topological_sort(dag, key=lambda n: dag.nodes[n]["idx"]))
    position = {name: i for i, name in enumerate(order)}

    reads: dict[str, list[str]] = {name: [] for name in order}
    writes: dict[str, list[str]] = {name: [] for name in order}
    for tensor, made_by in producer.items():
        if made_by is not None:
            writes[made_by].append(tensor)
        for reader in dict.fromkeys(consumers[tensor]):
            reads[reader].append(tensor)

    tensors = tuple(
        Tensor(
            name=tensor,
            producer=producer[tensor],
            consumers=tuple(sorted(dict.fromkeys(consumers[tensor]), key=position.__getitem__)),
            shape=(),
            dtype=_DTYPE,
            bytes=size_bytes[tensor],
            is_model_output=tensor in model_outputs,
        )
        for tensor in sorted(producer, key=lambda t: (_tensor_rank(producer[t], position), t))
    )
    blocks = tuple(
        Block(
            name=name,
            onnx_nodes=(name,),
            op_types=(_op_type(name),),
            inputs=tuple(reads[name]),
            outputs=tuple(writes[name]),
            macs=int(attrs[name].get("flops", 0)) // 2,
            weight_bytes=_mib_to_bytes(attrs[name].get("weights_size", 0)),
            output_bytes=sum(size_bytes[t] for t in writes[name]),
        )
        for name in order
    )
    model = ModelInfo(
        path=str(where),
        sha256=files.model_profile_sha256,
        inputs=tuple(_spec(t) for t in producer if producer[t] is None),
        outputs=tuple(_spec(t) for t in sorted(model_outputs)),
    )
    return LayerGraph(model=model, granularity="node", blocks=blocks, tensors=tensors)


def to_profiles(files: PrototypeFiles, graph: LayerGraph) -> dict[str, ComputeProfile]:
    """One ComputeProfile per qsplit node (device, edge, cloud) from the matching exec profile."""
    profiles = {}
    for node, role in ROLES:
        source = files.exec_profiles[role]
        missing = [b for b in graph.block_names if "nq_med_time" not in source.entries.get(b, {})]
        if missing:
            raise InputError(
                f"{len(missing)} node(s) have no nq_med_time, first {missing[0]!r}",
                file=source.path,
                fix="use an exec profile measured for this model profile",
            )
        blocks = {
            b: BlockTiming(
                fp32_s=float(source.entries[b]["nq_med_time"]),
                int8_s=_optional_float(source.entries[b].get("q_med_time")),
            )
            for b in graph.block_names
        }
        whole = {
            f"{key}_{stat}": source.entries[key][stat]
            for key in _WHOLE_MODEL_KEYS
            if key in source.entries
            for stat in ("nq_med_time", "q_med_time")
            if stat in source.entries[key]
        }
        profiles[node] = ComputeProfile(
            node=node,
            model_sha256=graph.model.sha256,
            granularity=graph.granularity,
            blocks=blocks,
            settings={
                "source": "prototype exec profile",
                "file": str(source.path),
                "prototype_role": role,
                "cpus": source.cpus,
                "statistic": "median",
                "whole_model_s": whole,
            },
        )
    return profiles


def to_noise(files: PrototypeFiles, graph: LayerGraph) -> NoisePolynomial:
    """The prototype's fitted regressor as a NoisePolynomial over the blocks it names."""
    reg = files.regressor
    where = files.model_profile_path
    known = set(graph.block_names)
    merged: dict[tuple[str, ...], float] = {}
    for key, coefficient in reg.get("interactions", {}).items():
        blocks = _parse_term(key, where)
        unknown = [b for b in blocks if b not in known]
        if unknown:
            raise InputError(
                f"regressor term names unknown node {unknown[0]!r}",
                file=where,
                field="regressor.interactions",
                fix="use the regressor fitted on this model profile",
            )
        ordered = tuple(sorted(set(blocks), key=graph.position))
        merged[ordered] = merged.get(ordered, 0.0) + float(coefficient)
    quantizable = sorted({b for term in merged for b in term}, key=graph.position)
    return NoisePolynomial(
        model_sha256=graph.model.sha256,
        quantizable=tuple(quantizable),
        intercept=float(reg.get("intercept", 0.0)),
        terms=tuple(NoiseTerm(blocks=t, coefficient=c) for t, c in merged.items()),
        degree=int(reg.get("degree", max((len(t) for t in merged), default=1))),
        fit={
            "source": "prototype regressor",
            "file": str(where),
            "train_r2": reg.get("train_score"),
            "test_r2": reg.get("test_score"),
        },
    )


def _parse_term(key: str, where: object) -> tuple[str, ...]:
    """``"('a', 'b')"`` → ``("a", "b")``; the prototype stringified Python tuples as keys."""
    try:
        value = ast.literal_eval(key)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(
            f"term key {key!r} is not a tuple of node names",
            file=str(where),
            field="regressor.interactions",
        )
    return value


def _mib_to_bytes(size_mb: float) -> int:
    return round(float(size_mb) * MIB_BYTES)


def _optional_float(value: float | str | None) -> float | None:
    return None if value is None else float(value)


def _op_type(onnx_name: str) -> str:
    """ONNX exporters name nodes ``/module/path/OpType[_n]``; the op type was not published."""
    return onnx_name.rsplit("/", 1)[-1].split("_", 1)[0]


def _tensor_rank(made_by: str | None, position: dict[str, int]) -> int:
    return -1 if made_by is None else position[made_by]


def _spec(name: str) -> TensorSpec:
    return TensorSpec(name=name, shape=(), dtype=_DTYPE)
