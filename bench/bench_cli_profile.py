"""Plans from ``qsplit profile`` predict what the testbed measures (issue 14: one profiling path).

The CLI way, command by command as a user types it: ``qsplit analyze`` the bundled YOLO11n,
``qsplit profile --infra three-tier.yaml`` every node, ``qsplit plan`` device-only,
device+edge and device+edge+cloud (latency only, fp32), ``qsplit testbed up`` the same file,
``qsplit run`` each plan (``--random``, one warm-up request dropped), ``qsplit testbed down``.
Each plan is run twice: ``plain`` (no profiles: every emulated node pads each component to
``padding factor ×`` its own least time, so profile and run are two measurements that agree
only if the CLI profiles as the agents time, with the same statistic and padding) and
``--profiles`` (the profiles the plan was made with: emulated nodes run each component in its
profiled time, as in the demo). Before the fix the device-only plan predicted 764 ms and
measured 502 ms (−34 %) plain.

Two profile sources are compared: ``shipped`` (the default: the bundled YOLO11n's shipped
profile scaled to each node's reference time) and ``measured`` (``--no-shipped``: this host
timed block by block and padded, the path every other model takes).

Usage: python bench/bench_cli_profile.py --out DIR [--requests 5] [--sources shipped,measured]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "src" / "qsplit" / "examples" / "three-tier.yaml"
MODEL = ROOT / "src" / "qsplit" / "assets" / "models" / "yolo11n.onnx"
PLANS = {
    "device-only": ["--w-latency", "1", "--w-energy", "0"],
    "three-tier": ["--w-latency", "1", "--w-energy", "0"],
    "balanced": ["--w-latency", "0.5", "--w-energy", "0.5"],
}
"""Plan name → ``qsplit plan`` options; ``device-only`` plans on device-only.yaml."""
NODES = ("device", "edge", "cloud")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--sources", default="shipped,measured")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load = {"before": os.getloadavg()}
    graph = args.out / "graph.json"
    _qsplit("analyze", str(MODEL), "--json", str(graph))
    plans: dict[str, Path] = {}
    for source in args.sources.split(","):
        profiles = args.out / source / "profiles"
        for node in NODES:
            extra = ["--no-shipped"] if source == "measured" else []
            out = str(profiles / f"{node}.json")
            _qsplit(
                "profile", str(MODEL), "--node", node, "--infra", str(INFRA), "--out", out, *extra
            )
        for name, options in PLANS.items():
            alone = name == "device-only"
            infra = INFRA.with_name("device-only.yaml") if alone else INFRA
            given = profiles / "device.json" if alone else profiles
            path = args.out / source / f"{name}.json"
            _qsplit(
                "plan",
                "--graph",
                str(graph),
                "--infra",
                str(infra),
                "--profiles",
                str(given),
                "--no-memory",
                "--out",
                str(path),
                *options,
            )
            plans[f"{source}/{name}"] = path
    state = args.out / "testbed"
    _qsplit("testbed", "up", "--infra", str(INFRA), "--state-dir", str(state))
    rows = []
    try:
        for label, plan in plans.items():
            for mode in ("plain", "profiles"):
                results = plan.with_suffix(f".{mode}.results.json")
                given = ["--profiles", str(plan.parent / "profiles")] if mode == "profiles" else []
                _qsplit(
                    "run",
                    str(plan),
                    "--infra",
                    str(state / "infra.yaml"),
                    "--model",
                    str(MODEL),
                    "--random",
                    str(args.requests + 1),
                    "--out",
                    str(results),
                    *given,
                )
                rows.append(_row(f"{label} {mode}", plan, results))
    finally:
        _qsplit("testbed", "down", "--state-dir", str(state))
    load["after"] = os.getloadavg()
    result: dict[str, Any] = {"rows": rows, "load_average": load}
    for mode in ("plain", "profiles"):
        errors = [abs(r["error"]) for r in rows if r["plan"].endswith(mode)]
        result[mode] = {"median_abs_error": statistics.median(errors), "max_abs_error": max(errors)}
    (args.out / "cli_profile.json").write_text(json.dumps(result, indent=2))
    for r in rows:
        print(
            f"{r['plan']:33s} {r['placement']:20s} predicted {r['predicted_ms']:7.1f} ms  "
            f"measured {r['measured_ms']:7.1f} ms  {r['error']:+.1%}"
        )
    for mode in ("plain", "profiles"):
        print(
            f"{mode}: predicted vs measured median |error| {result[mode]['median_abs_error']:.1%},"
            f" max {result[mode]['max_abs_error']:.1%} (goal 10 %)"
        )
    print(f"load average {load}")


def _qsplit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "qsplit", *args], check=True, stdout=subprocess.DEVNULL)


def _row(label: str, plan: Path, results: Path) -> dict[str, Any]:
    """Predicted latency of ``plan`` against the median of its measured requests, the first
    (connection set-up) dropped."""
    data = json.loads(results.read_text())
    latencies = [r["latency_s"] for r in data["requests"][1:] if r.get("error") is None]
    predicted = data["predicted"]["latency_s"]
    measured = statistics.median(latencies)
    assignment = json.loads(plan.read_text())["assignment"]
    return {
        "plan": label,
        "placement": "+".join(dict.fromkeys(assignment.values())),
        "predicted_ms": predicted * 1e3,
        "measured_ms": measured * 1e3,
        "error": measured / predicted - 1,
    }


if __name__ == "__main__":
    main()
