"""Building a PlanningProblem from the files the earlier stages wrote."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from qsplit.errors import InputError
from qsplit.infra import Infra, Link, load_infra
from qsplit.model import LayerGraph
from qsplit.plan._problem import LINK_OPTIONS, Bounds, LatencyModel, PlanningProblem
from qsplit.profile import CompressionTable, ComputeProfile, LinkProfile, load_compute_profiles
from qsplit.quant import NoisePolynomial


def load_problem(
    graph: LayerGraph | str | Path,
    infra: Infra | str | Path,
    profiles: Iterable[str | Path],
    noise: NoisePolynomial | str | Path | None = None,
    *,
    links: LinkProfile | str | Path | None = None,
    bounds: Bounds | None = None,
    w_latency: float = 0.5,
    w_energy: float = 0.5,
    latency_model: LatencyModel = "sum",
    compression: CompressionTable | str | Path | None = None,
    link_precisions: frozenset[str] = LINK_OPTIONS,
) -> PlanningProblem:
    """Read the graph, infrastructure, compute profiles and noise model, and check them together.

    ``profiles`` are profile files or directories (every compute profile in a directory is read);
    each profile names its node. ``links``, measured link latencies and bandwidths, replace the
    infrastructure file's numbers for the links they cover. ``compression`` (a compression
    table) and ``link_precisions`` open link precision and compression to the planner
    (:meth:`PlanningProblem.link_modes`). Raises :class:`InputError` naming the file and field
    of any mismatch.
    """
    sources: dict[str, str] = {}
    if not isinstance(graph, LayerGraph):
        if Path(graph).suffix == ".onnx":
            raise InputError(
                "the planner reads a LayerGraph, not an ONNX file",
                file=graph,
                fix=f"run `qsplit analyze {graph}` and pass the layergraph JSON it writes",
            )
        sources["graph"] = str(graph)
        graph = LayerGraph.load(graph)
    if not isinstance(infra, Infra):
        sources["infra"] = str(infra)
        infra = load_infra(infra)
    if links is not None:
        if not isinstance(links, LinkProfile):
            sources["links"] = str(links)
            links = LinkProfile.load(links)
        infra = infra.with_links(
            Link(m.source, m.target, m.bandwidth_bytes_per_s, m.latency_s) for m in links.links
        )
    if noise is not None and not isinstance(noise, NoisePolynomial):
        sources["noise"] = str(noise)
        noise = NoisePolynomial.load(noise)

    if compression is not None and not isinstance(compression, CompressionTable):
        sources["compression"] = str(compression)
        compression = CompressionTable.load(compression)

    by_node: dict[str, ComputeProfile] = {}
    for node, (path, profile) in load_compute_profiles(profiles).items():
        sources[f"profile:{node}"] = str(path)
        by_node[node] = profile
    return PlanningProblem(
        graph=graph,
        infra=infra,
        profiles=by_node,
        noise=noise,
        bounds=bounds or Bounds(),
        w_latency=w_latency,
        w_energy=w_energy,
        latency_model=latency_model,
        compression=compression,
        link_precisions=link_precisions,
        sources=sources,
    )
