"""Building a PlanningProblem from the files the earlier stages wrote."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from qsplit.errors import InputError
from qsplit.infra import Infra, Link, load_infra
from qsplit.model import LayerGraph
from qsplit.plan._problem import Bounds, LatencyModel, PlanningProblem
from qsplit.profile import ComputeProfile, LinkProfile
from qsplit.profile._types import COMPUTE_PROFILE_KIND
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
) -> PlanningProblem:
    """Read the graph, infrastructure, compute profiles and noise model, and check them together.

    ``profiles`` are profile files or directories (every compute profile in a directory is read);
    each profile names its node. ``links``, measured link latencies and bandwidths, replace the
    infrastructure file's numbers for the links they cover. Raises :class:`InputError` naming
    the file and field of any mismatch.
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

    by_node: dict[str, ComputeProfile] = {}
    for path in _profile_files(profiles):
        profile = ComputeProfile.load(path)
        key = f"profile:{profile.node}"
        if key in sources:
            raise InputError(
                f"second profile for node {profile.node!r} (first: {sources[key]})",
                file=path,
                field="node",
                fix="pass one profile per node",
            )
        sources[key] = str(path)
        by_node[profile.node] = profile
    return PlanningProblem(
        graph=graph,
        infra=infra,
        profiles=by_node,
        noise=noise,
        bounds=bounds or Bounds(),
        w_latency=w_latency,
        w_energy=w_energy,
        latency_model=latency_model,
        sources=sources,
    )


def _profile_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [p for p in sorted(path.glob("*.json")) if _kind(p) == COMPUTE_PROFILE_KIND]
            if not found:
                raise InputError(
                    "no compute profiles (*.json) in this directory",
                    file=path,
                    fix="run `qsplit profile` for each node",
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise InputError("file not found", file=path, fix="check the path")
    return files


def _kind(path: Path) -> object:
    """The ``kind`` of a qsplit JSON file (``None`` for anything else), to skip other files."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document.get("kind") if isinstance(document, dict) else None
