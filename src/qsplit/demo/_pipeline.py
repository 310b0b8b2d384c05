"""``qsplit demo`` end to end: testbed up → profile every node → links → noise model →
compression table → plans and baselines per scenario → deploy and run each → the run directory
(``run.json``)."""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from qsplit.demo._cache import Cache
from qsplit.demo._config import DemoConfig
from qsplit.demo._execute import reference_outputs, run_configuration
from qsplit.demo._inputs import (
    NOISE_EVAL_IMAGES,
    compression,
    measured_links,
    node_profiles,
    noise_model,
    requester_overhead,
)
from qsplit.demo._plans import Configuration, configuration, scenario_candidates
from qsplit.errors import InputError, QsplitError
from qsplit.infra import load_infra
from qsplit.model import analyze
from qsplit.profile import CompressionTable, ComputeProfile, LinkProfile
from qsplit.quant import NoisePolynomial, calibrate, image_feeds
from qsplit.report import Entry, Measured, RunIndex, Scenario
from qsplit.testbed import Testbed, dilated_infra


class Progress(Protocol):
    """Where the pipeline reports progress: one task per step, advanced as work is done."""

    def task(self, description: str, total: int) -> Callable[[int], None]: ...


class _Silent:
    def task(self, description: str, total: int) -> Callable[[int], None]:
        return lambda _=1: None


def run_demo(config: DemoConfig, progress: Progress | None = None) -> RunIndex:
    """Run the whole experiment of ``config`` and write its run directory; returns its index."""
    progress = progress or _Silent()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    run_dir = config.out
    run_dir.mkdir(parents=True, exist_ok=True)
    scenarios = _copy_scenarios(config, run_dir)

    model, graph = analyze(str(config.model))
    graph.save(str(run_dir / "layergraph.json"))
    spec = config.spec
    feeds = image_feeds(model, config.images, preprocess=spec.preprocess)
    reference = reference_outputs(config.model, feeds)
    cache = Cache(config.cache)

    testbed_infra = dilated_infra(config.testbed_infra, config.dilation, run_dir / "dilated")
    with Testbed.up(
        testbed_infra, run_dir / "testbed", owner_pid=os.getpid(), host=config.host
    ) as testbed:
        calibration = _calibration(testbed)
        step = time.perf_counter()
        advance = progress.task("profiling each node on its agent", len(testbed.state.agents))
        profiles = node_profiles(
            config, cache, graph, testbed, run_dir / "profiles", lambda: advance(1)
        )
        timings["profiles_s"] = time.perf_counter() - step

        step = time.perf_counter()
        advance = progress.task("measuring the emulated links", len(testbed.state.links))
        links_path = measured_links(
            testbed, run_dir / "profiles" / "links.json", lambda: advance(1)
        )
        requester_overhead(testbed, profiles)
        timings["links_s"] = time.perf_counter() - step

        step = time.perf_counter()
        advance = progress.task("noise model (masks measured)", config.noise_samples)
        ranges_path = run_dir / "profiles" / "calibration.json"
        noise_path = noise_model(
            config, cache, model, graph, run_dir / "noise", advance, ranges_path
        )
        timings["noise_s"] = time.perf_counter() - step

        step = time.perf_counter()
        ranges = calibrate(model, feeds, cache=ranges_path, preprocess=spec.preprocess)
        table_path = compression(
            graph, model, feeds, ranges, run_dir / "profiles" / "compression.json"
        )
        timings["compression_s"] = time.perf_counter() - step

        step = time.perf_counter()
        grid = len(config.w_latency) * len(config.noise_fractions)
        advance = progress.task("planning", grid * len(config.scenarios))
        links = LinkProfile.load(str(links_path))
        noise = NoisePolynomial.load(str(noise_path))
        table = CompressionTable.load(table_path)
        candidates = [
            candidate
            for spec in config.scenarios
            for candidate in scenario_candidates(
                config, spec, graph, profiles, links, noise, table, run_dir, lambda: advance(1)
            )
        ]
        timings["planning_s"] = time.perf_counter() - step

        step = time.perf_counter()
        node_timings = {n: ComputeProfile.load(str(path)) for n, path in profiles.items()}
        entries = _run_all(
            config, candidates, testbed, node_timings, feeds, reference, run_dir, progress
        )
        timings["runs_s"] = time.perf_counter() - step

    timings["total_s"] = time.perf_counter() - started
    index = RunIndex(
        model={
            "path": str(config.model),
            "sha256": graph.model.sha256,
            "blocks": len(graph.blocks),
            "macs": graph.total_macs,
        },
        layergraph="layergraph.json",
        profiles={node: str(path.relative_to(run_dir)) for node, path in profiles.items()},
        links=str(links_path.relative_to(run_dir)),
        noise=str(noise_path.relative_to(run_dir)),
        scenarios=scenarios,
        entries=tuple(entries),
        settings={
            **_settings(config, timings),
            "testbed": calibration,
            "compression": str(table_path.relative_to(run_dir)),
        },
    )
    index.save(run_dir)
    return index


def _copy_scenarios(config: DemoConfig, run_dir: Path) -> tuple[Scenario, ...]:
    testbed_nodes = set(load_infra(config.testbed_infra).node_names)
    scenarios = []
    for spec in config.scenarios:
        infra = load_infra(spec.infra)
        missing = sorted(set(infra.node_names) - testbed_nodes)
        if missing:
            raise InputError(
                f"scenario {spec.name!r} uses node(s) {missing} the testbed does not have",
                file=spec.infra,
                field="nodes",
                fix=f"use nodes of {config.testbed_infra}",
            )
        target = run_dir / "scenarios" / spec.infra.name
        target.parent.mkdir(parents=True, exist_ok=True)
        written = dilated_infra(spec.infra, config.dilation, target.parent)
        if written != target:
            shutil.copyfile(written, target)
        scenarios.append(
            Scenario(spec.name, str(target.relative_to(run_dir)), tuple(infra.node_names))
        )
    return tuple(scenarios)


def _run_all(
    config: DemoConfig,
    candidates: list[Entry],
    testbed: Testbed,
    profiles: Mapping[str, ComputeProfile],
    feeds: list[dict[str, np.ndarray]],
    reference: list[list[np.ndarray]],
    run_dir: Path,
    progress: Progress,
) -> list[Entry]:
    """Run every distinct configuration once; entries sharing one share its measurement.

    Each deployment carries the nodes' ``profiles``, so every emulated node runs a component in
    the time its profile (the one the plans were made with) says, not in padding × however long
    the component took on this host at that moment: the testbed's nodes then are what the
    plans assume, on a loaded host or a slower one alike.
    """
    distinct = list({configuration(c): c for c in candidates}.values())
    advance = progress.task(
        f"running {len(distinct)} configurations", len(distinct) * config.requests
    )
    infra = testbed.infra()
    outcomes: dict[Configuration, tuple[str, Measured | QsplitError]] = {}
    for number, candidate in enumerate(distinct):
        results = Path("runs") / f"{number:02d}.json"
        try:
            measured = run_configuration(
                config.model,
                candidate.assignment,
                candidate.quantized,
                infra,
                feeds,
                link_precision=candidate.link_precision,
                link_codec=candidate.link_codec,
                requests=config.requests,
                timeout_s=config.timeout_s,
                calibration=config.images,
                preprocess=config.spec.preprocess,
                profiles=profiles,
                reference=reference,
                noise_feeds=NOISE_EVAL_IMAGES,
                results_path=run_dir / results,
                on_request=lambda: advance(1),
            )
            outcomes[configuration(candidate)] = (str(results), measured)
        except QsplitError as exc:
            outcomes[configuration(candidate)] = (str(results), exc)
    entries = []
    for entry in candidates:
        results, outcome = outcomes[configuration(entry)]
        if isinstance(outcome, Measured):
            entries.append(replace(entry, measured=outcome, run=results))
        else:
            entries.append(replace(entry, error=str(outcome)))
    return entries


def _calibration(testbed: Testbed) -> dict[str, object]:
    """How the testbed emulated the nodes on this host: its reference time and each factor."""
    host = testbed.state.host
    return {
        "host_reference_ms": round(host.time_s * 1e3, 2),
        "host_reference_method": host.describe(),
        "host_whole_run_ms": None if host.whole_s is None else round(host.whole_s * 1e3, 2),
        "padding_factors": {
            name: round(agent.padding_factor, 3) for name, agent in testbed.state.agents.items()
        },
    }


def _settings(config: DemoConfig, timings: dict[str, float]) -> dict[str, object]:
    return {
        "requests_per_configuration": config.requests,
        "warmup_requests": 1,
        "latency_model": config.latency_model,
        "w_latency": list(config.w_latency),
        "noise_fractions": list(config.noise_fractions),
        "noise_samples": config.noise_samples,
        "link_tensors": config.link_tensors,
        "profile_repetitions": config.profile_repetitions,
        "testbed_infra": str(config.testbed_infra),
        "dilation": config.dilation,
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "load_average": os.getloadavg(),
        },
        "timings_s": timings,
    }
