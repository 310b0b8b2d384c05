"""The fleet plan and its baselines on the emulated fleet (Ray), against the queueing model.

Runs ``qsplit fleet demo``'s configurations (:func:`qsplit.demo.run_fleet_demo`: the fleet plan,
every class alone — contention-blind —, cloud-only, device-only, and the fleet plan with the
cloud forced to ``--cloud-batch`` for the batching gain) for the same duration with the same
seeded arrivals, and prints, as JSON:

* per configuration: offered and completed requests per second, failures, measured p50/p95
  beside the prediction (``ratio`` = predicted / measured), per shared node ρ measured and
  predicted, the mean wait for a replica and for a batch to close and the mean batch size
  measured and predicted (the time-out model), the batches that ran and the runs slower than
  their emulated target, the worker replicas running (with ``--node-workers``) and what a batch
  took beyond its target (median of end − start − target), to reach its worker (median of
  received − start, inside the padding) and to come back to the node's front (median of
  returned − end: the hop from a worker);
* the fleet plan against every other configuration (throughput and p95 ratios; the issue's goal
  against contention-blind plans: ≥ 1.5× throughput at equal or better p95);
* the largest prediction error of each configuration with a finite prediction (goal: 15 %);

and then the same in short, one line per configuration and shared node (measured / predicted),
for the record in docs/BENCHMARKS.md.

Usage: PYTHONPATH=src /work/venvs/ray/bin/python bench/bench_fleet_testbed.py
[--infra FILE] [--devices N] [--duration 60] [--warmup 5] [--seed 0] [--cloud-batch 4]
[--batch-wait 0.05] [--rate-scale 1] [--batching-only] [--input-size N] [--out DIR] [--json FILE]
[--node-workers in-process|fixed|autoscale] [--min-workers 1]

``--batch-wait``, ``--rate-scale`` and ``--batching-only`` make the batching-gain scenario: a
cloud that sees enough requests per batch window to form batches, measured at the forced batch
size against the plan's.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from _output import RunContext, emit_json
from qsplit.demo import FleetDemoConfig, run_fleet_demo
from qsplit.fleet import BATCH_WAIT_S
from qsplit.report import FleetResult, Quantity
from qsplit.serve import FleetMeasurement, NodeScaling
from qsplit.serve._scaling import MODES


def _quantity(q: Quantity) -> dict[str, float | None]:
    ratio = None if q.error is None else 1 + q.error
    return {"predicted_s": q.predicted, "measured_s": q.measured, "ratio": ratio}


def _median_ms(values: list[float]) -> float | None:
    return float(np.median(values)) * 1e3 if values else None


def _summary(r: FleetResult, m: FleetMeasurement) -> dict[str, object]:
    return {
        "offered_hz": r.offered_hz,
        "throughput_hz": r.throughput_hz,
        "drained_hz": r.drained_hz,
        "sent": r.sent,
        "failed": r.failed,
        "saturated_prediction": r.saturated,
        "p50": _quantity(r.p50_s),
        "p95": _quantity(r.p95_s),
        "classes": {
            c.name: {"p50": _quantity(c.p50_s), "p95": _quantity(c.p95_s)} for c in r.classes
        },
        "nodes": {
            n.node: {
                "rho_measured": n.utilisation.measured,
                "rho_predicted": n.utilisation.predicted,
                "wait_measured_s": n.wait_s.measured,
                "wait_predicted_s": n.wait_s.predicted,
                "forming_measured_s": n.forming_s.measured,
                "forming_predicted_s": n.forming_s.predicted,
                "batch_measured": n.batch_size.measured,
                "batch_predicted": n.batch_size.predicted,
                "batches": {str(b): k for b, k in sorted(n.batches.items())},
                "overruns": f"{n.overruns}/{n.runs}",
                "workers": m.workers(n.node),
                "batch_replicas": len(m.batch_replicas(n.node)),
                "over_target_ms_median": _median_ms(
                    [b.end_s - b.start_s - b.target_s for b in m.batches if b.node == n.node]
                ),
                "hop_to_worker_ms_median": _median_ms(
                    [b.received_s - b.start_s for b in m.batches if b.node == n.node]
                ),
                "hop_back_ms_median": _median_ms(
                    [b.returned_s - b.end_s for b in m.batches if b.node == n.node]
                ),
            }
            for n in r.nodes
        },
        "device_overruns": dict(r.device_overruns),
        "worst_error": r.worst_error(),
    }


def _ms(q: Quantity) -> str:
    error = "" if q.error is None else f" ({q.error:+.1%})"
    return f"{q.measured * 1e3:,.1f} / {q.predicted * 1e3:,.1f} ms{error}"


def _lines(results: list[FleetResult]) -> list[str]:
    """The run in short: errors are predicted / measured − 1."""
    lines = []
    for r in results:
        lines.append(
            f"{r.label}: {r.throughput_hz:.2f} req/s of {r.offered_hz:.2f}, {r.failed} failed; "
            f"p50 {_ms(r.p50_s)}, p95 {_ms(r.p95_s)}"
        )
        for n in r.nodes:
            batch = n.batch_size
            lines.append(
                f"  {n.node}: rho {n.utilisation.measured:.3f} / {n.utilisation.predicted:.3f}, "
                f"wait for a slot {_ms(n.wait_s)}, batch filling {_ms(n.forming_s)}, "
                f"mean batch {batch.measured:.2f} / {batch.predicted:.2f}, "
                f"overruns {n.overruns}/{n.runs}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--infra", type=Path)
    parser.add_argument("--devices", type=int)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cloud-batch", type=int, default=4)
    parser.add_argument(
        "--batch-wait",
        type=float,
        default=BATCH_WAIT_S,
        help="seconds a batch stays open (planned, predicted and served alike)",
    )
    parser.add_argument(
        "--rate-scale",
        type=float,
        default=1.0,
        help="multiply every class's request rate (more requests per batch window)",
    )
    parser.add_argument(
        "--batching-only",
        action="store_true",
        help="run only the fleet plan and its batch twins (no baselines)",
    )
    parser.add_argument("--input-size", type=int, help="square input (default: the model's)")
    parser.add_argument(
        "--node-workers",
        choices=MODES,
        default="in-process",
        help="what the shared nodes run their batches on (qsplit.serve.NodeScaling)",
    )
    parser.add_argument("--min-workers", type=int, default=1, help="autoscale: workers kept")
    parser.add_argument("--out", type=Path, default=Path("bench/out/fleet-testbed"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = FleetDemoConfig(
        out=args.out,
        devices=args.devices,
        duration_s=args.duration,
        warmup_s=args.warmup,
        seed=args.seed,
        input_shapes={"images": (1, 3, args.input_size, args.input_size)}
        if args.input_size
        else None,
        forced_batch={"cloud": args.cloud_batch} if args.cloud_batch > 1 else {},
        batch_wait_s=args.batch_wait,
        rate_scale=args.rate_scale,
        node_scaling=NodeScaling(args.node_workers, min_replicas=args.min_workers),
    )
    if args.batching_only:
        config = replace(config, baselines=())
    if args.infra is not None:
        config = replace(config, infra=args.infra)
    context = RunContext()
    outcome = run_fleet_demo(config)
    emit_json(
        {
            **context.fields(),
            "infra": str(config.infra),
            "devices": sum(c.count for c in outcome.plan.fleet.classes),
            "duration_s": config.duration_s,
            "batch_wait_s": config.batch_wait_s,
            "rate_scale": config.rate_scale,
            "node_workers": args.node_workers,
            "configurations": {
                r.label: _summary(r, m)
                for r, m in zip(outcome.results, outcome.measurements, strict=True)
            },
            "fleet_versus": {
                v.against: {
                    "throughput_ratio": v.throughput_ratio,
                    "p95_ratio": v.p95_ratio,
                    "meets_goal": v.meets_goal(),
                }
                for v in outcome.versus
            },
        },
        args.json,
    )
    print("\n".join(_lines(list(outcome.results))))


if __name__ == "__main__":
    main()
