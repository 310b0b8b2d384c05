"""The fleet plan on autoscaled worker replicas while devices join mid-run: each shared node's
worker replicas over time (sampled from Serve's status), and the latencies before and after.

Plans ``--infra`` (default: the example fleet-testbed.yaml), serves the plan with every shared
node's batches on worker replicas that Serve autoscales between ``--min-workers`` and the node's
planned replicas (``qsplit.serve.NodeScaling("autoscale")``), runs ``--start-scale`` times the
planned devices per class (rounded up) for ``--phase`` seconds after ``--warmup``, then starts
more, up to ``--join-scale`` times the planned devices, and runs another phase. Prints, as
JSON: per node the worker replicas at each change from its deployment on (seconds since the
devices started; negative: before), the replicas that ran batches, ρ and overruns; p50/p95 of
the requests sent before the join and of those sent after it (from ``--settle`` seconds
after), each beside the fleet model's prediction for that many devices at the planned
replicas and the fleet simulation's with Serve's autoscaler (both without the serving path's
fixed cost, which bench_fleet_testbed.py calibrates) and the 10/50/90 % quantiles of the
simulated p95 of windows as long as the phase (a phase is one such window), and the mean
workers per phase, measured and simulated; and then the same in short.

Usage: PYTHONPATH=src python bench/bench_fleet_autoscale.py [--infra FILE] [--phase 60]
[--warmup 10] [--start-scale 1] [--join-scale 2] [--settle 20] [--seed 0] [--min-workers 1]
[--upscale-delay 2] [--downscale-delay 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from _output import RunContext, emit_json
from qsplit.assets import bundled_model_path
from qsplit.demo._config import EXAMPLES
from qsplit.demo._fleet_predict import Predictor
from qsplit.fleet import batch_profile_for, fleet_profiles, load_fleet, plan_fleet, simulate
from qsplit.model import analyze
from qsplit.serve import FleetMeasurement, FleetServing, NodeScaling


def _quantiles_s(m: FleetMeasurement, first: float, last: float) -> dict[str, float | int]:
    latencies = [r.latency_s for r in m.completed() if first <= r.sent_s < last]
    return {
        "completed": len(latencies),
        "p50_s": float(np.quantile(latencies, 0.5)) if latencies else float("nan"),
        "p95_s": float(np.quantile(latencies, 0.95)) if latencies else float("nan"),
    }


def _changes(samples: tuple[tuple[float, int], ...]) -> list[list[float]]:
    """``[seconds, replicas]`` at the first sample and at each change."""
    changes: list[list[float]] = []
    for t, n in samples:
        if not changes or changes[-1][1] != n:
            changes.append([round(t, 1), n])
    return changes


def _mean_workers(samples: tuple[tuple[float, int], ...], start: float, stop: float) -> float:
    """Time-weighted mean of the sampled worker counts from ``start`` to ``stop``."""
    area = 0.0
    ends = [*(t for t, _ in samples[1:]), stop]
    for (t, n), t_next in zip(samples, ends, strict=True):
        area += max(0.0, min(t_next, stop) - max(t, start)) * n
    return round(area / (stop - start), 2) if stop > start else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--infra", type=Path, default=EXAMPLES / "fleet-testbed.yaml")
    parser.add_argument("--phase", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--start-scale", type=float, default=1.0)
    parser.add_argument("--join-scale", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-workers", type=int, default=1)
    parser.add_argument("--upscale-delay", type=float, default=2.0)
    parser.add_argument("--downscale-delay", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = bundled_model_path()
    fleet = load_fleet(args.infra)
    _, graph = analyze(str(model))
    profiles = fleet_profiles(fleet, graph)
    batching = batch_profile_for(graph.model.sha256)
    deployment = plan_fleet(fleet, graph, profiles, batching=batching).deployment()
    scaling = NodeScaling(
        "autoscale",
        min_replicas=args.min_workers,
        upscale_delay_s=args.upscale_delay,
        downscale_delay_s=args.downscale_delay,
    )
    planned = {c.name: c.count for c in deployment.classes}
    counts = {n: math.ceil(k * args.start_scale) for n, k in planned.items()}
    joined_counts = {n: max(counts[n], round(k * args.join_scale)) for n, k in planned.items()}
    context = RunContext()
    with FleetServing(fleet, model=model, profiles=profiles, batching=batching) as serving:
        run = serving.start(deployment, devices=counts, seed=args.seed, scaling=scaling)
        try:
            first = run.elapsed_s() + args.warmup
            time.sleep(max(0.0, first + args.phase - run.elapsed_s()))
            joined = run.elapsed_s()
            for name, count in joined_counts.items():
                run.add_devices(name, count - counts[name])
            time.sleep(max(0.0, joined + args.phase - run.elapsed_s()))
            timeline = run.worker_replicas()  # from the deployment on, warm-up included
            end = run.elapsed_s()
            m = run.finish("autoscale-join", (first, end))
        finally:
            run.close()
    predictor = Predictor(fleet, graph, profiles, batching)
    phases = {
        "before": (first, joined, counts),
        "after": (joined + args.settle, float("inf"), joined_counts),
    }
    latencies = {}
    for name, (start, stop, devices) in phases.items():
        predicted = predictor.outcome(deployment, counts=devices)
        problem, choice, _ = predictor.problem(deployment, devices)
        window = min(stop, end) - start
        simulated = simulate(
            problem, choice, seed=args.seed, autoscale=scaling.policy, window_s=window
        )
        latencies[name] = {
            **_quantiles_s(m, start, stop),
            "devices": sum(devices.values()),
            "predicted_p50_s": predicted.latency_p50_s,
            "predicted_p95_s": predicted.latency_p95_s,
            "autoscaler_p50_s": simulated.latency_p50_s,
            "autoscaler_p95_s": simulated.latency_p95_s,
            "autoscaler_window_p95_s": dict(
                zip(("p10", "p50", "p90"), simulated.window_band(), strict=True)
            ),
            "autoscaler_windows": len(simulated.window_p95_s),
            "workers_measured": {
                k: _mean_workers(v, start, min(stop, end)) for k, v in timeline.items()
            },
            "workers_simulated": simulated.servers,
        }
    nodes = {
        s.node: {
            "replicas_planned": s.replicas,
            "workers_over_time": _changes(timeline.get(s.node, ())),
            "batch_replicas": len(m.batch_replicas(s.node)),
            "rho": m.utilisation(s.node),
            "overruns": f"{m.overruns.get(s.node, 0)}/{m.runs.get(s.node, 0)}",
        }
        for s in deployment.shared
    }
    emit_json(
        {
            **context.fields(),
            "infra": str(args.infra),
            "scaling": vars(scaling),
            "joined_s": joined,
            "failed": len(m.failed()),
            "latency": latencies,
            "nodes": nodes,
        },
        args.json,
    )
    for name, q in latencies.items():
        print(
            f"{name} ({q['devices']} devices, {q['completed']} requests): "
            f"p50 {q['p50_s'] * 1e3:.0f} ms (predicted {q['predicted_p50_s'] * 1e3:.0f}), "
            f"p95 {q['p95_s'] * 1e3:.0f} ms (predicted {q['predicted_p95_s'] * 1e3:.0f}; "
            f"autoscaler simulated {q['autoscaler_p50_s'] * 1e3:.0f} / "
            f"{q['autoscaler_p95_s'] * 1e3:.0f}, a window's p95 10-50-90 % "
            f"{'-'.join(f'{v * 1e3:.0f}' for v in q['autoscaler_window_p95_s'].values())}); "
            f"workers measured {q['workers_measured']}, "
            f"simulated {q['workers_simulated']}"
        )
    for node, n in nodes.items():
        print(
            f"{node}: workers {n['workers_over_time']}, rho {n['rho']:.3f}, "
            f"overruns {n['overruns']}"
        )


if __name__ == "__main__":
    main()
