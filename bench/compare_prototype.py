"""Compare qsplit's plans with the research prototype's on the prototype's own measured data.

For each published scenario (device only; device + edge; device + edge + cloud), latency weight
(1, 0.5, 0) and noise bound (0, 0.1), this script

* plans with qsplit on the imported data at ONNX-node granularity (``qsplit.plan.plan``),
* reads the prototype's plan (``results/<Scenario>Plan/plan.json``) and its generation time
  (``generation.csv``, median over its repetitions),
* rebuilds the prototype's block → node assignment from its components (anchored at the
  producers of each component's outgoing tensors, spread along tensors that stay inside a
  component, checked against the published component sizes) and prices it with qsplit's cost
  model, so both plans are compared by the same yardstick.

Prints Markdown tables; writes bench/out/prototype_comparison.json. Usage:

    python bench/compare_prototype.py [--prototype DIR]
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from qsplit.infra import Infra
from qsplit.model import LayerGraph
from qsplit.partition import components
from qsplit.plan import Bounds, PlanningProblem, evaluate, plan
from qsplit.prototype import PrototypeImport, import_prototype

ROOT = Path(__file__).resolve().parents[1]
PROTOTYPE = ROOT.parent / "shared" / "reference" / "prototype"
SCENARIOS = (
    ("device", "DevicePlan", ("device",)),
    ("device+edge", "DeviceEdgePlan", ("device", "edge")),
    ("device+edge+cloud", "DeviceEdgeCloudPlan", ("device", "edge", "cloud")),
)
SERVERS = {"0": "device", "1": "edge", "2": "cloud"}
QUANTIZED_SUFFIX = "_QuantizeLinear_Output"


def restricted(imported: PrototypeImport, nodes: tuple[str, ...], lw: float, mn: float):
    infra = imported.infra
    sub = Infra(
        device=infra.device,
        nodes=tuple(n for n in infra.nodes if n.name in nodes),
        links=tuple(lk for lk in infra.links if lk.source in nodes and lk.target in nodes),
    )
    return PlanningProblem(
        graph=imported.graph,
        infra=sub,
        profiles={n: imported.profiles[n] for n in nodes},
        noise=imported.noise,
        bounds=Bounds(noise_max=mn),
        w_latency=lw,
        w_energy=1.0 - lw,
    )


def prototype_plans(folder: Path) -> dict[tuple[float, float], tuple[dict, float]]:
    """(latency weight, noise bound) → (plan entry, median generation time in s), 1-CPU edge."""
    times: dict[tuple[float, float], list[float]] = {}
    with (folder / "generation.csv").open() as f:
        for row in csv.DictReader(f):
            if row["edge_cpus"] not in ("", "1.0"):
                continue
            key = (float(row["latency_weight"]), float(row["max_noises"]))
            times.setdefault(key, []).append(float(row["run_time"]))
    plans = {}
    for name, entry in json.loads((folder / "plan.json").read_text()).items():
        fields = name.split("_")
        values = dict(zip(fields[1::2], fields[2::2], strict=False))
        if values.get("ec") not in ("1.0", "-1"):
            continue
        key = (float(values["lw"]), float(values["mn"]))
        if key in times:
            plans[key] = (entry, statistics.median(times[key]))
    return plans


def rebuild_assignment(graph: LayerGraph, plan_dict: dict) -> dict[str, str] | None:
    """The prototype plan's block → node, or ``None`` when its components do not pin it down."""
    comps = {ast.literal_eval(k): v for k, v in plan_dict.items()}
    real = {k: v for k, v in comps.items() if not (v["is_only_input"] or v["is_only_output"])}
    crossing = {
        t.removesuffix(QUANTIZED_SUFFIX) for v in comps.values() for t in v["output_connections"]
    }
    tensors = graph.tensor_by_name
    label: dict[str, str] = {}
    for (_, server, _), comp in real.items():
        for name in comp["output_connections"]:
            producer = tensors[name.removesuffix(QUANTIZED_SUFFIX)].producer
            if producer is None or label.setdefault(producer, SERVERS[server]) != SERVERS[server]:
                return None
    dag = graph.dag
    frontier = list(label)
    while frontier:
        block = frontier.pop()
        neighbours = [(v, data["tensors"]) for _, v, data in dag.out_edges(block, data=True)] + [
            (u, data["tensors"]) for u, _, data in dag.in_edges(block, data=True)
        ]
        for other, carried in neighbours:
            if all(t in crossing for t in carried):
                continue
            if other not in label:
                label[other] = label[block]
                frontier.append(other)
            elif label[other] != label[block]:
                return None
    expected = Counter()
    for (_, server, _), comp in real.items():
        expected[SERVERS[server]] += comp["component_size"]
    if len(label) != len(graph.blocks) or Counter(label.values()) != expected:
        return None
    return label


def placement(assignment: dict[str, str], graph: LayerGraph) -> str:
    counts = Counter(assignment.values())
    parts = ", ".join(f"{n} {c}" for n, c in sorted(counts.items()))
    return f"{parts} ({len(components(graph, assignment))} comp.)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prototype", type=Path, default=PROTOTYPE)
    args = parser.parse_args()
    imported = import_prototype(args.prototype)
    graph = imported.graph
    rows = []
    for scenario, folder, nodes in SCENARIOS:
        published = prototype_plans(args.prototype / "results" / folder)
        for (lw, mn), (entry, generation_s) in sorted(published.items(), reverse=True):
            if mn not in (0.0, 0.1) or (scenario == "device" and lw != 1.0):
                continue
            problem = restricted(imported, nodes, lw, mn)
            started = time.perf_counter()
            ours = plan(problem, with_baselines=False)
            plan_s = time.perf_counter() - started
            theirs = rebuild_assignment(graph, entry["plan_dict"])
            theirs_q = tuple(entry["quantized_nodes"])
            repriced = evaluate(problem, theirs, theirs_q) if theirs else None
            row = {
                "scenario": scenario,
                "w_latency": lw,
                "noise_max": mn,
                "qsplit": {
                    "latency_s": ours.predicted.latency_s,
                    "energy_j": ours.predicted.energy_j,
                    "device_energy_j": ours.predicted.device_energy_j,
                    "noise": ours.predicted.noise,
                    "objective": ours.objective,
                    "quantized": len(ours.quantized),
                    "placement": placement(dict(ours.assignment), graph),
                    "plan_s": plan_s,
                    "solves": ours.solver.solves,
                    "payoff": None if ours.payoff is None else vars(ours.payoff),
                },
                "prototype": {
                    "reported_latency_s": entry["latency_value"],
                    "reported_energy_j": entry["energy_value"],
                    "reported_device_energy_j": entry["device_energy"],
                    "quantized": len(theirs_q),
                    "generation_s": generation_s,
                    "rebuilt": theirs is not None,
                    "placement": placement(theirs, graph) if theirs else None,
                    "repriced": None
                    if repriced is None
                    else {
                        "latency_s": repriced.latency_s,
                        "energy_j": repriced.energy_j,
                        "device_energy_j": repriced.device_energy_j,
                        "noise": repriced.noise,
                        "objective": None
                        if ours.payoff is None
                        else ours.payoff.objective(
                            repriced.latency_s, repriced.energy_j, lw, 1.0 - lw
                        ),
                    },
                },
            }
            rows.append(row)
            q, p = row["qsplit"], row["prototype"]
            r = p["repriced"]
            print(
                f"| {scenario} | {lw:g} | {mn:g} | {q['latency_s']:.3f} / {q['energy_j']:.3f} / "
                f"{q['device_energy_j']:.3f} / {q['noise']:.4f} | {q['placement']}, "
                f"{q['quantized']} int8 | {q['plan_s']:.1f} s | "
                + (
                    f"{r['latency_s']:.3f} / {r['energy_j']:.3f} / {r['device_energy_j']:.3f} / "
                    f"{r['noise']:.4f}"
                    if r
                    else "not rebuilt"
                )
                + f" | {p['reported_latency_s']:.3f} / {p['reported_energy_j']:.3f} / "
                f"{p['reported_device_energy_j']:.3f} | {p['placement'] or '?'}, "
                f"{p['quantized']} int8 | {p['generation_s']:.1f} s |",
                flush=True,
            )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "prototype_comparison.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
