"""Arrivals through the tiers: the fleet model's prediction against the simulation where a
shared node's requests are another node's departures (docs/fleet.md, *Arrivals through the
tiers*).

Scenarios: the two-tier ones of ``tests/fleet/fleet_helpers.py`` (a 1-replica edge, 30 ms a
request at ρ ≈ 0.6, then a 3-replica cloud batching at 4 with time-outs of 20 ms, 100 ms,
500 ms, with Poisson requests into the same batcher, and behind an edge that batches too),
and the shipped testbed (``src/qsplit/examples/fleet-testbed.yaml``) planned with its cloud
forced to batch 4 at 50 ms, as ``bench/bench_fleet_testbed.py --cloud-batch 4`` serves it.

Then ``--random N`` random two-tier fleets (``random_tier_problem`` of the same file, seeds
0..N−1, one simulation each): per class the errors of mean, p50 and p95, the cloud's mean batch
size's, and their summary (median, 90th percentile and largest absolute error, classes beyond
15 %).

Per scenario and seed (``--seeds``, 40,000 requests each): the mean batch size of every
batcher predicted and simulated (the simulation's batches are counted through the batch times
it asks its components for), and per class the mean, p50 and p95 predicted and simulated (the
medians over the seeds) with the relative error. Run it on two trees to compare models: the
scenarios come from this tree's tests, the model from ``PYTHONPATH``.

Usage: PYTHONPATH=src python bench/bench_fleet_tiers.py [--seeds 3] [--random 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import qsplit
from _output import RunContext, emit_json
from qsplit.assets import bundled_model_path
from qsplit.fleet import (
    Choice,
    FleetProblem,
    Work,
    assess,
    deployed_choice,
    fleet_profiles,
    load_fleet,
    plan_fleet,
    simulate,
)
from qsplit.model import analyze

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "fleet"))
from fleet_helpers import TIER_SCENARIOS, random_tier_problem, tier_scenario

TESTBED = "testbed, cloud forced to batch 4 at 50 ms"


def testbed() -> tuple[FleetProblem, Choice]:
    fleet = load_fleet(Path(qsplit.__file__).parent / "examples" / "fleet-testbed.yaml")
    _, graph = analyze(str(bundled_model_path()))
    profiles = fleet_profiles(fleet, graph)
    deployment = plan_fleet(fleet, graph, profiles, batch_wait_s=0.05).deployment()
    shared = tuple(replace(s, batch_size=4) if s.node == "cloud" else s for s in deployment.shared)
    return deployed_choice(fleet, graph, profiles, replace(deployment, shared=shared))


BATCHES: Counter[tuple[str, tuple[str, ...], int]] = Counter()
"""(node, blocks, size) → batches the simulation ran."""


@dataclass(frozen=True)
class _Counted(Work):
    """A component that counts the batch times asked of it: the simulation asks once per
    batch it starts, and once per class at batch 1 for the plan's fixed time."""

    def batch_s(self, batch: float) -> float:
        BATCHES[self.node, self.blocks, int(batch)] += 1
        return super().batch_s(batch)


def simulated_batches(problem: FleetProblem, choice: Choice, seed: int) -> tuple[object, dict]:
    """Simulate with counting components: the simulation's result and, per (node, blocks),
    the mean size of the batches it ran."""
    counted = {
        name: tuple(replace(k, work=tuple(_Counted(**vars(w)) for w in k.work)) for k in cands)
        for name, cands in problem.candidates.items()
    }
    BATCHES.clear()
    result = simulate(replace(problem, candidates=counted), choice, requests=40_000, seed=seed)
    for c in problem.fleet.classes:  # the fixed time's calls, one per class and work
        for w in choice.of(problem, c.name).work:
            BATCHES[w.node, w.blocks, 1] -= 1
    sizes: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for (node, blocks, size), count in BATCHES.items():
        entry = sizes.setdefault((node, blocks), [0, 0])
        entry[0] += size * count
        entry[1] += count
    return result, {key: requests / batches for key, (requests, batches) in sizes.items()}


def _error(predicted: float, simulated: float) -> float:
    return predicted / simulated - 1


def scenario(name: str, problem: FleetProblem, choice: Choice, seeds: int) -> dict:
    predicted = assess(problem, choice)
    runs = [simulated_batches(problem, choice, seed) for seed in range(seeds)]
    batches = {}
    for node in predicted.nodes:
        for g in node.groups:
            measured = statistics.median(sizes[node.node, g.blocks] for _, sizes in runs)
            batches[f"{node.node} {'+'.join(g.classes)}"] = {
                "predicted": g.mean_batch,
                "simulated": measured,
                "error": _error(g.mean_batch, measured),
            }
    classes = {}
    for c in predicted.classes:
        sim = [statistics.median(r.per_class[c.name][i] for r, _ in runs) for i in range(3)]
        pred = (c.latency_mean_s, c.latency_p50_s, c.latency_p95_s)
        classes[c.name] = {
            q: {"predicted_s": p, "simulated_s": s, "error": _error(p, s)}
            for q, p, s in zip(("mean", "p50", "p95"), pred, sim, strict=True)
        }
    return {"batches": batches, "classes": classes}


def random_fleets(count: int) -> dict:
    """Errors of every class and cloud batcher of ``count`` random two-tier fleets, and their
    summary."""
    rows = []
    for seed in range(count):
        problem, choice = random_tier_problem(seed)
        predicted = assess(problem, choice)
        simulated, sizes = simulated_batches(problem, choice, seed)
        cloud = next(n for n in predicted.nodes if n.node == "cloud")
        batches = [_error(g.mean_batch, sizes["cloud", g.blocks]) for g in cloud.groups]
        for c in predicted.classes:
            sim = simulated.per_class[c.name]
            pred = (c.latency_mean_s, c.latency_p50_s, c.latency_p95_s)
            errors = [_error(p, s) for p, s in zip(pred, sim, strict=True)]
            rows.append(
                {"seed": seed, "class": c.name, "batch": max(batches, key=abs)}
                | dict(zip(("mean", "p50", "p95"), errors, strict=True))
            )
    summary = {}
    for q in ("batch", "mean", "p50", "p95"):
        errors = sorted(abs(r[q]) for r in rows)
        summary[q] = {
            "median": statistics.median(errors),
            "p90": errors[int(0.9 * (len(errors) - 1))],
            "max": errors[-1],
            "beyond_15pct": sum(e > 0.15 for e in errors),
        }
    return {"classes": rows, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--random", type=int, default=60)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    context = RunContext()
    cases = {name: tier_scenario(name) for name in TIER_SCENARIOS}
    cases[TESTBED] = testbed()
    results = {name: scenario(name, *case, args.seeds) for name, case in cases.items()}
    random = random_fleets(args.random)
    emit_json(
        {**context.fields(), "seeds": args.seeds, "scenarios": results, "random": random},
        args.json,
    )
    for name, r in results.items():
        print(name, file=sys.stderr)
        for label, b in r["batches"].items():
            print(
                f"  batch {label}: {b['predicted']:.3f} / {b['simulated']:.3f} ({b['error']:+.1%})",
                file=sys.stderr,
            )
        for c, qs in r["classes"].items():
            line = ", ".join(
                f"{q} {v['predicted_s'] * 1e3:.0f} / {v['simulated_s'] * 1e3:.0f} ms "
                f"({v['error']:+.1%})"
                for q, v in qs.items()
            )
            print(f"  {c}: {line}", file=sys.stderr)
    for q, v in random["summary"].items():
        print(
            f"random fleets, {q}: median {v['median']:.1%}, p90 {v['p90']:.1%}, "
            f"max {v['max']:.1%}, beyond 15 %: {v['beyond_15pct']}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
