"""``qsplit demo --scenario adaptive``: a stream of requests while the testbed changes.

The device's uplinks drop 10× and recover, then the node the nominal plan offloads to dies
(``examples/adaptive-schedule.yaml`` on ``examples/adaptive.yaml``). Three strategies run the
same scenario one after another (:mod:`qsplit.demo._streams`): the static nominal plan, a
QPART-style per-bandwidth table, and qsplit adaptive. The run directory gets ``adaptive.json``
(kind ``adaptive-demo``: every request of every strategy, switch points, schedule events as
played, the per-phase table) and ``report/adaptive.md`` with the latency-over-time figure.

Plans optimise latency alone (``w_latency`` 1), in fp32: what changes is placement, which is
what bandwidth and a dead node change.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qsplit._jsonio import write_json
from qsplit.adapt import AdaptPolicy
from qsplit.assets import bundled_model_path, sample_images_dir
from qsplit.demo._cache import Cache
from qsplit.demo._config import EXAMPLES, DemoConfig
from qsplit.demo._inputs import node_profiles
from qsplit.demo._streams import (
    Stream,
    StreamRun,
    plan_label,
    run_adaptive_stream,
    run_static,
    run_table,
)
from qsplit.errors import InputError
from qsplit.infra import load_infra
from qsplit.model import analyze
from qsplit.plan import PlanningProblem, bandwidth_table, plan
from qsplit.profile import ComputeProfile, HostReference
from qsplit.quant import image_feeds
from qsplit.report import PhaseRow, Timeline, phase_rows, phase_table, phases, plot_timelines
from qsplit.testbed import PlayedEvent, Testbed, load_schedule

ADAPTIVE_KIND = "adaptive-demo"
ADAPTIVE_SCHEMA_VERSION = 1
ADAPTIVE_FILE = "adaptive.json"
STRATEGIES = ("static", "table", "adaptive")


@dataclass(frozen=True)
class AdaptiveConfig:
    """What the adaptive scenario varies. The defaults are ``qsplit demo --scenario adaptive``."""

    out: Path
    model: Path = field(default_factory=bundled_model_path)
    testbed_infra: Path = EXAMPLES / "adaptive.yaml"
    schedule: Path = EXAMPLES / "adaptive-schedule.yaml"
    tail_s: float = 12.0
    """How long the streams go on after the schedule's last event."""
    grid_bytes_per_s: tuple[float, ...] = (0.5e6, 1e6, 2e6, 5e6, 10e6, 20e6)
    """The per-bandwidth table's grid (the device's uplinks)."""
    strategies: tuple[str, ...] = STRATEGIES
    policy: AdaptPolicy = field(
        default_factory=lambda: AdaptPolicy(check_interval_s=0.25, stale_s=6.0)
    )
    """qsplit adaptive's policy. Estimates go stale after 6 s (not the default 30): a plan
    that fled a slow uplink sends nothing over it, so only a stale estimate lets it try the
    link again, and the scenario's recovery lasts 10 s."""
    images: Path = field(default_factory=sample_images_dir)
    images_used: int = 2
    """Sample images the streams cycle through."""
    cache: Path = Path(".qsplit/cache")
    profile_repetitions: int = 20
    timeout_s: float = 60.0
    """Per request."""
    host: HostReference | None = None
    """This host's measurement for the testbed, as :attr:`DemoConfig.host`."""


@dataclass(frozen=True)
class AdaptiveOutcome:
    run_dir: Path
    timelines: tuple[Timeline, ...]
    rows: tuple[PhaseRow, ...]
    report: Path


def run_adaptive_demo(
    config: AdaptiveConfig, on_step: Callable[[str], None] | None = None
) -> AdaptiveOutcome:
    """Run the scenario for every strategy of ``config`` and write the run directory."""
    unknown = sorted(set(config.strategies) - set(STRATEGIES))
    if unknown or not config.strategies:
        raise InputError(
            f"unknown strategies {unknown}" if unknown else "no strategy to run",
            field="strategies",
            fix=f"choose among {', '.join(STRATEGIES)}",
        )
    step = on_step or (lambda _: None)
    schedule = load_schedule(config.schedule)
    nominal = load_infra(config.testbed_infra)
    run_dir = config.out
    run_dir.mkdir(parents=True, exist_ok=True)
    model, graph = analyze(str(config.model))
    # The main demo's settings where the two share a step (model description, profiles).
    shared = DemoConfig(
        out=run_dir,
        model=config.model,
        cache=config.cache,
        profile_repetitions=config.profile_repetitions,
    )
    preprocess = shared.spec.preprocess
    feeds = image_feeds(model, config.images, config.images_used, preprocess=preprocess)
    duration_s = schedule.duration_s + config.tail_s
    runs: dict[str, StreamRun] = {}
    with Testbed.up(
        config.testbed_infra, run_dir / "testbed", owner_pid=os.getpid(), host=config.host
    ) as testbed:
        schedule.check(testbed.state)
        step("profiling each node on its agent")
        paths = node_profiles(
            shared, Cache(config.cache), graph, testbed, run_dir / "profiles", lambda: None
        )
        profiles = {node: ComputeProfile.load(str(path)) for node, path in paths.items()}
        problem = PlanningProblem(graph, nominal, profiles, w_latency=1.0, w_energy=0.0)
        step("planning the per-bandwidth table")
        table = bandwidth_table(problem, config.grid_bytes_per_s, with_baselines=False)
        start = plan(problem, with_baselines=False)
        stream = Stream(
            testbed, nominal, problem, config.model, feeds, schedule, duration_s, config.timeout_s
        )
        for strategy in config.strategies:
            step(f"streaming: {strategy} ({duration_s:.0f} s)")
            if strategy == "static":
                runs[strategy] = run_static(stream, start)
            elif strategy == "table":
                runs[strategy] = run_table(stream, table)
            else:
                runs[strategy] = run_adaptive_stream(stream, start, config.policy)
    timelines = [r.timeline for r in runs.values()]
    cut = phases(schedule.moments(), duration_s)
    rows = phase_rows(timelines, cut)
    report_dir = run_dir / "report"
    figure = plot_timelines(timelines, cut, report_dir / "img" / "adaptive-latency.png")
    report = _write_report(
        report_dir / "adaptive.md",
        figure,
        rows,
        config,
        start_label=plan_label(start.assignment, nominal.node_names),
    )
    write_json(
        run_dir / ADAPTIVE_FILE,
        ADAPTIVE_KIND,
        ADAPTIVE_SCHEMA_VERSION,
        {
            "model": {"path": str(config.model), "sha256": graph.model.sha256},
            "testbed_infra": str(config.testbed_infra),
            "schedule": {
                "file": str(config.schedule),
                "events": [
                    {"at_s": e.at_s, "action": e.action, "label": e.describe()}
                    for e in schedule.events
                ],
                "played": {
                    strategy: [_played(p, run.played) for p in run.played]
                    for strategy, run in runs.items()
                },
            },
            "duration_s": duration_s,
            "table": {
                "links": [list(link) for link in table.links],
                "grid_bytes_per_s": list(table.bandwidths_bytes_per_s),
                "plans": [plan_label(p.assignment, nominal.node_names) for p in table.plans],
            },
            "nominal_plan": plan_label(start.assignment, nominal.node_names),
            "policy": asdict(config.policy),
            "timelines": [t.to_dict() for t in timelines],
            "decisions": {s: list(r.decisions) for s, r in runs.items() if r.decisions},
            "phases": [vars(p) for p in cut],
            "rows": [vars(r) for r in rows],
            "machine": {
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            },
        },
    )
    return AdaptiveOutcome(run_dir, tuple(timelines), rows, report)


def _played(event: PlayedEvent, events: tuple[PlayedEvent, ...]) -> dict[str, Any]:
    """One applied event, its time counted from the first event's planned time."""
    origin = events[0].applied_at - events[0].event.at_s
    return {"at_s": event.applied_at - origin, "label": event.event.describe()}


def _write_report(
    path: Path, figure: Path, rows: tuple[PhaseRow, ...], config: AdaptiveConfig, start_label: str
) -> Path:
    lost = {s: sum(r.lost for r in rows if r.strategy == s) for s in config.strategies}
    text = "\n".join(
        [
            "# Adaptive scenario",
            "",
            f"Testbed `{config.testbed_infra.name}`, schedule `{config.schedule.name}`; every "
            f"strategy starts on the nominal plan ({start_label}) and sends one request at a "
            "time. `static` keeps it; `table` takes the plan its per-bandwidth table gives "
            "for the uplink rate probed before each request; `adaptive` is qsplit's "
            "re-planning with failover (docs/adapt.md).",
            "",
            f"![latency over time](img/{figure.name})",
            "",
            phase_table(rows),
            "",
            "Requests lost: " + ", ".join(f"{s} {n}" for s, n in lost.items()) + ".",
            "",
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
