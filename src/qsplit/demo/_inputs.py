"""The planner's inputs on the testbed: a profile per node, measured links, the noise model,
and how well each crossing tensor compresses.

Profiles are made *by each node's agent* (its padding and thread settings, as it will run the
components; for a model that ships a profile, as the bundled YOLO11n does, that profile scaled to
the node's reference time, so plans do not depend on the host); links are measured through the
emulators the tensors will cross, and the requester's fixed costs with null requests to the
device's agent. All are what a real deployment would do; only the machines
are emulated. Profiles carry each node's codec times, and the compression table and the noise
study's link variables complete what the planner needs to choose link precision and compression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from qsplit.demo._cache import Cache
from qsplit.demo._config import DemoConfig
from qsplit.model import LayerGraph, LoadedModel
from qsplit.profile import ComputeProfile, LinkProfile, measure_compression, reference_values
from qsplit.quant import Calibration, image_feeds, plot_fit, study_noise
from qsplit.runtime import measure_overhead, profile_on_agent
from qsplit.testbed import AGENT_STATISTIC, Testbed

Advance = Callable[[], None]

NOISE_EVAL_IMAGES = 2
NOISE_SEED = 0


def node_profiles(
    config: DemoConfig,
    cache: Cache,
    graph: LayerGraph,
    testbed: Testbed,
    out: Path,
    advance: Advance,
) -> dict[str, Path]:
    """Profile every testbed node through its agent, one at a time (they share the cores)."""
    paths = {}
    for name, agent in testbed.state.agents.items():
        key = {
            "model": graph.model.sha256,
            "granularity": graph.granularity,
            "node": name,
            # The node's absolute speed, not the host-dependent factor: a profile emulates the
            # same node on any host, so a cached one stays valid when the host changes.
            "reference_time_s": agent.reference_time_s,
            "repetitions": config.profile_repetitions,
            "statistic": AGENT_STATISTIC,
            # Profiles carry the node's link codec times since this key: older entries lack them.
            "codec": True,
        }

        def make(
            folder: Path,
            name: str = name,
            address: str = agent.address,
            reference_s: float = agent.reference_time_s,
        ) -> None:
            profile = profile_on_agent(
                address,
                config.model,
                name,
                repetitions=config.profile_repetitions,
                reference_time_s=reference_s,
            )
            profile.save(str(folder / f"{name}.json"))

        cache.copy_into("profiles", key, make, out)
        paths[name] = out / f"{name}.json"
        ComputeProfile.load(str(paths[name]))  # a corrupt cache entry fails here, by name
        advance()
    return paths


def requester_overhead(testbed: Testbed, profiles: dict[str, Path]) -> None:
    """The requester's fixed costs, measured now with null requests and written into the
    device's profile: live, like the links, because they run at the host's speed and load
    (profiles are cached; this must not be)."""
    infra = testbed.infra()
    path = profiles[infra.device]
    profile = ComputeProfile.load(str(path))
    replace(profile, overhead=measure_overhead(infra)).save(str(path))


def measured_links(testbed: Testbed, out: Path, advance: Advance) -> Path:
    """Every emulated link measured now (cheap, and the one thing that must be live)."""
    profile: LinkProfile = testbed.measure_links(on_link=lambda *_: advance())
    profile.save(str(out))
    return out


def noise_model(
    config: DemoConfig,
    cache: Cache,
    model: LoadedModel,
    graph: LayerGraph,
    out: Path,
    advance: Callable[[int], None],
    calibration_cache: Path,
) -> Path:
    """Fit (or reuse) the noise polynomial of the top-K blocks into the folder ``out``
    (``noise.json``, with its samples and a predicted-vs-measured plot beside it). A fit
    calibrates the model into ``calibration_cache``, where the demo's compression table finds
    the same ranges instead of calibrating a second time."""
    images = sorted(p.name for p in config.images.iterdir() if p.is_file())
    spec = config.spec
    key = {
        "model": graph.model.sha256,
        "granularity": graph.granularity,
        "images": images,
        "samples": config.noise_samples,
        "top_k": config.noise_top_k,
        "eval_images": NOISE_EVAL_IMAGES,
        "seed": NOISE_SEED,
    }
    if config.link_tensors:
        # Only then: noise models cached before link variables existed stay valid without them.
        key["link_tensors"] = config.link_tensors
    if spec.source is not None:
        # Only then: noise models cached before descriptions existed stay valid for the default.
        key["description"] = {
            "preprocess": spec.preprocess.to_dict(),
            "task": {"kind": spec.task.kind, **spec.task.options},
        }

    def make(folder: Path) -> None:
        study = study_noise(
            model,
            graph,
            image_feeds(model, config.images, preprocess=spec.preprocess),
            samples=config.noise_samples,
            top_k=config.noise_top_k,
            eval_images=NOISE_EVAL_IMAGES,
            seed=NOISE_SEED,
            on_sample=lambda _: advance(1),
            spec=spec,
            link_tensors=config.link_tensors,
            calibration_cache=calibration_cache,
        )
        study.save(folder / "noise.json")
        plot_fit(folder / "noise.png", study.model, study.samples)

    if cache.copy_into("noise", key, make, out):
        advance(config.noise_samples)
    return out / "noise.json"


def compression(
    graph: LayerGraph,
    model: LoadedModel,
    feeds: list[dict[str, np.ndarray]],
    calibration: Calibration,
    out: Path,
) -> Path:
    """The lz4/zstd ratio of every crossing tensor at fp32, fp16 and int8, on the first
    request's input (what the runs send), written to ``out``. Not cached: it takes a second or
    two, less than the cache's bookkeeping would save."""
    values = reference_values(model, graph, feeds[0])
    measure_compression(graph, values, calibration).save(str(out))
    return out
