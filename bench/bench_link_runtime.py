"""Link precision measured on the testbed (issue 15, item 1): YOLO11n on device+edge+cloud,
device uplinks 5 MB/s (``three-tier.yaml``), the best latency plan with and without link
precision at the same noise bound, both run on the testbed.

The CLI way: ``qsplit profile`` each node (codec times included; one also writes the
compression table with ``--compression``), ``qsplit noise --link-tensors N`` (or ``--noise``
for an existing one with link variables), ``qsplit plan`` twice (``--no-link-precision``, and
``--compression``), ``qsplit testbed up``, ``qsplit run --profiles`` each plan on the bundled
images (the first request, connection set-up, dropped), ``qsplit testbed down``. Reported per
plan: predicted and measured median latency, bytes on the wire per request (the runtime's
transfer records: compressed frames at their compressed size), and each node's codec
throughput from its profile (MB/s of input at 4 MiB).

``--infra`` takes another three-node file (``bench/corpus-three-tier.yaml``: the same links,
nodes four times slower, for a host too loaded to emulate three-tier.yaml's 300 ms cloud). The
agents listen from ``--port`` on, so the testbed can run beside others.

Usage: python bench/bench_link_runtime.py --out DIR [--infra FILE] [--port 7181]
       [--noise FILE] [--noise-max 0.05] [--rounds 3] [--samples 60] [--link-tensors 8]
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
IMAGES = ROOT / "src" / "qsplit" / "assets" / "images"
NODES = ("device", "edge", "cloud")
PLANS = {"fp32 links": ["--no-link-precision"], "link precision": ["--compression"]}
MIB4 = 4 * 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--infra", type=Path, default=INFRA)
    parser.add_argument("--port", type=int, default=7181)
    parser.add_argument("--noise", type=Path, help="noise model with link variables")
    parser.add_argument("--noise-max", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the images")
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--link-tensors", type=int, default=8)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    load = {"before": os.getloadavg()}
    infra = _on_ports(args.infra, args.port, out / "infra.yaml")
    graph, profiles, compression = out / "graph.json", out / "profiles", out / "compression.json"
    _qsplit("analyze", str(MODEL), "--json", str(graph))
    for node in NODES:
        extra = ["--compression", str(compression)] if node == "device" else []
        target = str(profiles / f"{node}.json")
        _qsplit(
            "profile", str(MODEL), "--node", node, "--infra", str(infra), "--out", target, *extra
        )
    noise = args.noise or out / "noise.json"
    if args.noise is None:
        _qsplit(
            "noise", str(MODEL), "--out", str(noise), "--samples", str(args.samples),
            "--link-tensors", str(args.link_tensors),
        )  # fmt: skip
    plans = {}
    for label, options in PLANS.items():
        path = out / f"{label.replace(' ', '-')}.plan.json"
        extra = [*options, str(compression)] if "--compression" in options else options
        _qsplit(
            "plan", "--graph", str(graph), "--infra", str(infra), "--profiles", str(profiles),
            "--noise", str(noise), "--noise-max", str(args.noise_max), "--w-latency", "1",
            "--w-energy", "0", "--no-memory", "--out", str(path), *extra,
        )  # fmt: skip
        plans[label] = path
    state = out / "testbed"
    _qsplit("testbed", "up", "--infra", str(infra), "--state-dir", str(state))
    rows = []
    try:
        for label, plan in plans.items():
            results = plan.with_suffix(".results.json")
            inputs = [str(IMAGES)] * args.rounds
            for index, folder in enumerate(inputs):
                part = results.with_suffix(f".{index}.json")
                _qsplit(
                    "run", str(plan), "--infra", str(state / "infra.yaml"), "--model", str(MODEL),
                    "--input", folder, "--profiles", str(profiles), "--out", str(part),
                )  # fmt: skip
            rows.append(
                _row(label, plan, [results.with_suffix(f".{i}.json") for i in range(len(inputs))])
            )
    finally:
        _qsplit("testbed", "down", "--state-dir", str(state))
    load["after"] = os.getloadavg()
    codec = {node: _throughput(profiles / f"{node}.json") for node in NODES}
    result: dict[str, Any] = {
        "infra": str(args.infra),
        "noise_max": args.noise_max,
        "rows": rows,
        "codec_mb_per_s": codec,
        "load_average": load,
    }
    base, linked = rows[0]["measured_ms"], rows[1]["measured_ms"]
    result["speed_up"] = base / linked
    (out / "link_runtime.json").write_text(json.dumps(result, indent=2))
    for r in rows:
        print(
            f"{r['plan']:15s} {r['placement']:20s} predicted {r['predicted_ms']:7.1f} ms  "
            f"measured {r['measured_ms']:7.1f} ms (median of {r['requests']})  "
            f"wire {r['wire_bytes'] / 1e6:.3f} MB/request  links {r['links']}"
        )
    print(f"measured speed-up {result['speed_up']:.2f}x (goal 1.3x)")
    for node, rates in codec.items():
        print(f"{node}: " + ", ".join(f"{op} {e:,.0f}/{d:,.0f}" for op, (e, d) in rates.items()))
    print(f"load average {load}")


def _on_ports(infra: Path, port: int, out: Path) -> Path:
    """``infra`` with its nodes' agents on ``port``, ``port + 1``, … (in file order)."""
    import yaml

    data = yaml.safe_load(infra.read_text())
    for index, node in enumerate(data["nodes"]):
        node["address"] = f"127.0.0.1:{port + index}"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _qsplit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "qsplit", *args], check=True, stdout=subprocess.DEVNULL)


def _row(label: str, plan: Path, parts: list[Path]) -> dict[str, Any]:
    """Median latency and bytes on the wire of ``plan``'s requests, each run's first dropped."""
    requests, predicted = [], None
    for part in parts:
        data = json.loads(part.read_text())
        requests += [r for r in data["requests"][1:] if r.get("error") is None]
        predicted = data["predicted"]["latency_s"]
    chosen = json.loads(plan.read_text())
    wire = [sum(t["bytes"] for t in r["transfers"]) for r in requests]
    return {
        "plan": label,
        "placement": "+".join(dict.fromkeys(chosen["assignment"].values())),
        "quantized": len(chosen.get("quantized", [])),
        "links": {
            "precision": len(chosen.get("link_precision", {})),
            "codec": len(chosen.get("link_codec", {})),
        },
        "predicted_ms": predicted * 1e3 if predicted is not None else None,
        "measured_ms": statistics.median(r["latency_s"] for r in requests) * 1e3,
        "requests": len(requests),
        "wire_bytes": statistics.median(wire),
    }


def _throughput(profile: Path) -> dict[str, tuple[float, float]]:
    """Each codec operation's encode and decode MB/s of input at 4 MiB, from the profile."""
    codec = json.loads(profile.read_text())["codec"]
    return {
        op: tuple(
            MIB4 / (c["fixed_s"] + c["per_byte_s"] * MIB4) / 1e6
            for c in (costs["encode"], costs["decode"])
        )
        for op, costs in codec.items()
    }


if __name__ == "__main__":
    main()
