"""The prototype import as one value: graph, per-node profiles, noise model and infrastructure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qsplit.infra import Infra, infra_from_dict
from qsplit.model import LayerGraph
from qsplit.profile import ComputeProfile
from qsplit.prototype._coarsen import block_mapping, coarsen_noise, coarsen_profile
from qsplit.prototype._convert import to_layergraph, to_noise, to_profiles
from qsplit.prototype._files import read_prototype
from qsplit.prototype._scenario import infra_document, infra_yaml
from qsplit.quant import NoisePolynomial

LAYERGRAPH_FILE = "layergraph.json"
PROFILES_DIR = "profiles"
NOISE_FILE = "noise.json"
INFRA_FILE = "infra.yaml"


@dataclass(frozen=True)
class PrototypeImport:
    """Everything ``qsplit plan`` needs, built from the prototype's measurements."""

    graph: LayerGraph
    profiles: dict[str, ComputeProfile]
    """By qsplit node name: ``device``, ``edge``, ``cloud``."""
    noise: NoisePolynomial
    infra: Infra
    """The scenario's infrastructure (see :mod:`._scenario`), validated like a user's file."""
    infra_yaml: str
    """The same as the YAML file written beside the JSON files."""

    def save(self, out_dir: str | Path) -> tuple[Path, ...]:
        """Write the files in the layout ``qsplit plan`` reads; return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / LAYERGRAPH_FILE, out / NOISE_FILE, out / INFRA_FILE]
        self.graph.save(str(written[0]))
        self.noise.save(str(written[1]))
        written[2].write_text(self.infra_yaml)
        for node, profile in self.profiles.items():
            path = out / PROFILES_DIR / f"{node}.json"
            profile.save(str(path))
            written.append(path)
        return tuple(written)


def import_prototype(
    root: str | Path,
    model: str = "yolo11x-seg",
    *,
    granularity: Literal["node", "block"] = "node",
    cpus: dict[str, float] | None = None,
) -> PrototypeImport:
    """Read the prototype's data for ``model`` under ``root`` and convert it.

    ``granularity="block"`` coarsens the graph with :func:`qsplit.model.coarsen` and carries the
    profiles and the noise polynomial along. ``cpus`` picks an exec profile per prototype role
    (``Client``, ``Edge``, ``Cloud``) where several were measured.
    """
    files = read_prototype(root, model, cpus)
    graph = to_layergraph(files)
    profiles = to_profiles(files, graph)
    noise = to_noise(files, graph)
    if granularity == "block":
        from qsplit.model import coarsen

        coarse = coarsen(graph)
        mapping = block_mapping(graph, coarse)
        profiles = {n: coarsen_profile(p, mapping, coarse) for n, p in profiles.items()}
        noise = coarsen_noise(noise, mapping, coarse)
        graph = coarse
    return PrototypeImport(
        graph=graph,
        profiles=profiles,
        noise=noise,
        infra=infra_from_dict(infra_document(files), source=str(files.energy_path)),
        infra_yaml=infra_yaml(files),
    )
