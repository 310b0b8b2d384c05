"""Benchmark: the fleet planner at 1,000 devices, and its queueing prediction against simulation.

a. Plan a fleet of 1,000 devices in 10 classes sharing one edge and one cloud (the bundled
   YOLO11n, shipped profiles scaled to each machine's reference time): the whole
   ``plan_fleet`` call (candidates for every class + the MILP + baselines), median of
   ``--repeat`` runs. Goal: ≤ 10 s.
b. The chosen plan and each feasible baseline, predicted (``assess``) and simulated
   (``simulate``, 40,000 requests, seeds 0..2, their medians): p50 and p95 of the fleet and per
   class, relative error. Goal: within 15 %.
c. The same plan projected from 100 to 1,000 devices of the example fleet
   (src/qsplit/examples/fleet.yaml): utilisation, p50/p95 predicted and simulated, and where
   each tier saturates; the plot goes to bench/out/fleet-projection.png.

Usage: PYTHONPATH=src python bench/bench_fleet.py [a b c] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import qsplit
from qsplit.assets import bundled_model_path
from qsplit.fleet import (
    Choice,
    FleetPlan,
    FleetProblem,
    assess,
    fleet_from_dict,
    fleet_profiles,
    load_fleet,
    plan_fleet,
    plot_projection,
    project,
    simulate,
)
from qsplit.model import analyze

OUT = Path(__file__).parent / "out"
EXAMPLE = Path(qsplit.__file__).parent / "examples" / "fleet.yaml"


def ten_classes() -> dict:
    """1,000 devices in 10 classes: speeds 120–1,500 ms, rates 0.05–1 req/s, own links."""
    classes = []
    for i in range(10):
        name = f"class{i}"
        links = [
            {
                "from": name,
                "to": "edge",
                "bandwidth": f"{10 + 15 * i}MB/s",
                "latency": f"{1 + i % 3}ms",
                "symmetric": True,
            }
        ]
        if i % 2:
            links.append(
                {
                    "from": name,
                    "to": "cloud",
                    "bandwidth": f"{20 + 5 * i}MB/s",
                    "latency": f"{20 + 2 * i}ms",
                    "symmetric": True,
                }
            )
        classes.append(
            {
                "name": name,
                "count": [250, 200, 150, 100, 80, 70, 60, 40, 30, 20][i],
                "rate_hz": [0.05, 0.1, 0.2, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 0.2][i],
                "compute_power_w": 2.0 + 0.5 * i,
                "transmit_power_w": 1.0 + 0.3 * (i % 4),
                "memory_bytes": "2GiB",
                "reference_time": f"{[1500, 1000, 800, 600, 450, 300, 250, 168, 120, 900][i]}ms",
                "links": links,
            }
        )
    return {
        "schema_version": 1,
        "device": "device",
        "nodes": [
            {
                "name": "device",
                "role": "device",
                "compute_power_w": 3,
                "transmit_power_w": 3,
                "memory_bytes": "4GiB",
                "reference_time": "1000ms",
            },
            {
                "name": "edge",
                "role": "edge",
                "compute_power_w": 60,
                "transmit_power_w": 2,
                "memory_bytes": "64GiB",
                "reference_time": "60ms",
            },
            {
                "name": "cloud",
                "role": "cloud",
                "compute_power_w": 120,
                "transmit_power_w": 0.1,
                "memory_bytes": "256GiB",
                "reference_time": "30ms",
            },
        ],
        "links": [
            {
                "from": "device",
                "to": "edge",
                "bandwidth": "20MB/s",
                "latency": "2ms",
                "symmetric": True,
            },
            {
                "from": "edge",
                "to": "cloud",
                "bandwidth": "125MB/s",
                "latency": "20ms",
                "symmetric": True,
            },
        ],
        "fleet": {
            "shared": [{"node": "edge", "replicas": 8}, {"node": "cloud", "replicas": 32}],
            "classes": classes,
        },
    }


def bench_a(repeat: int) -> FleetPlan:
    fleet = fleet_from_dict(ten_classes(), source="bench_fleet.ten_classes")
    _, graph = analyze(str(bundled_model_path()))
    profiles = fleet_profiles(fleet, graph)
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = plan_fleet(fleet, graph, profiles)
        times.append(time.perf_counter() - started)
    assert result is not None
    print(
        f"a. {fleet.device_count} devices, {len(fleet.classes)} classes: plan_fleet "
        f"{', '.join(f'{t:.2f}' for t in times)} s (median {statistics.median(times):.2f} s); "
        f"last run: candidates {result.candidates_time_s:.2f} s "
        f"({sum(len(c) for c in result.problem.candidates.values())} plans), MILP "
        f"{result.solve_time_s:.3f} s ({result.columns} columns, {result.rows} rows)"
    )
    _describe(result)
    return result


def _describe(result: FleetPlan) -> None:
    o = result.outcome
    print(
        f"   plan: mean {o.latency_mean_s * 1e3:.1f} ms, p95 {o.latency_p95_s * 1e3:.1f} ms, "
        f"energy {o.energy_j:.3g} J, capacity {o.capacity_hz:.4g} of {o.throughput_hz:.4g} "
        f"req/s offered, ρ "
        + ", ".join(f"{n.node} {n.utilisation:.3f} (b={n.batch})" for n in o.nodes)
    )
    for name, (_, b) in result.baselines.items():
        print(
            f"   {name}: mean {b.latency_mean_s * 1e3:.1f} ms, p95 {b.latency_p95_s * 1e3:.1f} "
            f"ms, energy {b.energy_j:.3g} J, capacity {b.capacity_hz:.4g} req/s, ρ "
            + ", ".join(f"{n.node} {n.utilisation:.3f}" for n in b.nodes)
        )


def bench_b(result: FleetPlan) -> None:
    cases = [("plan", result.choice)]
    cases += [(n, c) for n, (c, o) in result.baselines.items() if o.feasible]
    print("b. predicted vs simulated (40,000 requests, median of seeds 0-2)")
    for name, choice in cases:
        _compare(name, result.problem, choice)


def _compare(name: str, problem: FleetProblem, choice: Choice) -> None:
    predicted = assess(problem, choice)
    runs = [simulate(problem, choice, requests=40_000, seed=s) for s in range(3)]
    rows = [
        (
            "fleet",
            predicted.latency_p50_s,
            predicted.latency_p95_s,
            statistics.median(r.latency_p50_s for r in runs),
            statistics.median(r.latency_p95_s for r in runs),
        )
    ]
    for c in predicted.classes:
        rows.append(
            (
                c.name,
                c.latency_p50_s,
                c.latency_p95_s,
                statistics.median(r.per_class[c.name][1] for r in runs),
                statistics.median(r.per_class[c.name][2] for r in runs),
            )
        )
    worst = 0.0
    for who, p50, p95, s50, s95 in rows:
        e50, e95 = (p50 - s50) / s50, (p95 - s95) / s95
        worst = max(worst, abs(e50), abs(e95))
        if who == "fleet":
            print(
                f"   {name}: fleet p50 {p50 * 1e3:.1f} / {s50 * 1e3:.1f} ms ({e50:+.1%}), "
                f"p95 {p95 * 1e3:.1f} / {s95 * 1e3:.1f} ms ({e95:+.1%})"
            )
    print(f"   {name}: largest error over the fleet and its {len(rows) - 1} classes: {worst:.1%}")


def bench_c() -> None:
    fleet = load_fleet(EXAMPLE)
    _, graph = analyze(str(bundled_model_path()))
    result = plan_fleet(fleet, graph, fleet_profiles(fleet, graph))
    counts = list(range(100, 1001, 100))
    projection = project(result.problem, result.choice, counts, requests=20_000)
    print("c. example fleet, plan held, devices: ρ per node; p50, p95 predicted / simulated")
    for p in projection.points:
        sim = p.simulated
        print(
            f"   {p.devices:5d}: "
            + ", ".join(f"{k} {r:.3f}" for k, r in p.utilisation.items())
            + f"; p50 {p.predicted.latency_p50_s * 1e3:.1f} / "
            + (f"{sim.latency_p50_s * 1e3:.1f}" if sim else "—")
            + f" ms, p95 {p.predicted.latency_p95_s * 1e3:.1f} / "
            + (f"{sim.latency_p95_s * 1e3:.1f}" if sim else "—")
            + " ms"
        )
    for k in projection.saturation:
        print(
            f"   {k}: bound at {projection.bound[k]:.0f} devices, saturates at "
            f"{projection.saturation[k]:.0f}"
        )
    print(f"   plot: {plot_projection(projection, OUT / 'fleet-projection.png', 0.8)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["a", "b", "c"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {Path('/proc/loadavg').read_text().split()[:3]}"
    )
    result = bench_a(args.repeat) if {"a", "b"} & set(args.parts) else None
    if "b" in args.parts and result is not None:
        bench_b(result)
    if "c" in args.parts:
        bench_c()
    print(f"load after {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
