"""Ray Serve against the agents, on this machine.

1. Per-request overhead: YOLO11n cut in three components on three nodes, run one request at a
   time (a) as the three components one after another in this process (no transport), (b)
   through three agent processes (``qsplit.runtime``), (c) as three Ray Serve deployments
   (``qsplit.serve``, embedded Ray), (d) through agents of which the second and third are
   gateways (``qsplit agent --backend ray``: the first agent plays a device without Ray, the
   others hand their components to Serve). The path's overhead per request is its median
   latency minus the in-process chain's; requests are interleaved so load changes hit all
   alike.
2. Batching gain on a shared tier: YOLO11n's blocks 0-9 (convolutions only: they batch) on a
   shared node served by Ray, the rest on the device in the callers' threads; ``--callers``
   concurrent callers send ``--requests`` requests in all, once with batch size 1 and once with
   ``--batch``; throughput is requests over wall time, and the largest batch the replica ran
   is reported.

Usage: python bench/bench_serve.py [--repeats 20] [--requests 32] [--callers 4] [--batch 4]
[--out FILE]   (needs ray[serve]; PYTHONPATH=src)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import onnxruntime as ort

from _output import emit_json
from bench_runtime import agents, infra, random_image, run_chain, session_options, split_by_thirds
from qsplit.assets import bundled_model_path
from qsplit.infra import Infra, Link, Node
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect
from qsplit.serve import NodeServing, connect_ray, import_ray, start_embedded

SHARED_BLOCKS = 10
"""YOLO11n's first blocks, convolutions up to SPPF, which batch (C2PSA's attention does not)."""


def bench_overhead(repeats: int, ray_address: str) -> dict[str, float]:
    path = bundled_model_path("yolo11n")
    blocks = analyze(str(path))[1].block_names
    nodes = ("n1", "n2", "n3")
    split = split_by_thirds(blocks, nodes)
    feeds = random_image()
    gateway = ("--backend", "ray", "--ray-address", ray_address)
    with agents(*nodes) as addresses, agents(*nodes[1:], extra=gateway) as gateways:
        net = infra(addresses)
        deployment = build_deployment(path, split, net)
        via = infra({"n1": addresses["n1"], **gateways})
        chain = [
            ort.InferenceSession(c.onnx, session_options(), providers=["CPUExecutionProvider"])
            for c in deployment.components
        ]
        with ExitStack() as stack:
            paths = {
                "chain": lambda f: run_chain(deployment, chain, f),
                "agents": stack.enter_context(connect(deployment, net)).infer,
                "ray": stack.enter_context(connect_ray(deployment, net)).infer,
                "gateway": stack.enter_context(
                    connect(build_deployment(path, split, via), via)
                ).infer,
            }
            for _ in range(3):
                for run in paths.values():
                    run(feeds)
            samples: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(repeats):
                for name, run in paths.items():
                    start = time.perf_counter()
                    run(feeds)
                    samples[name].append(time.perf_counter() - start)
    medians = {f"{k}_median_s": statistics.median(v) for k, v in samples.items()}
    chain_s = medians["chain_median_s"]
    return {
        **medians,
        **{f"{k}_overhead_s": medians[f"{k}_median_s"] - chain_s for k in samples if k != "chain"},
    }


def two_tier() -> Infra:
    """The requester (device) and one shared node, ``cloud``; no agents (Ray only)."""
    nodes = (Node("device", "device", 1.0, 1.0, 2**32), Node("cloud", "cloud", 1.0, 1.0, 2**32))
    links = (Link("device", "cloud", 1e9, 0.0), Link("cloud", "device", 1e9, 0.0))
    return Infra(device="device", nodes=nodes, links=links)


def bench_batching(requests: int, callers: int, batch: int) -> dict[str, Any]:
    path = bundled_model_path("yolo11n")
    blocks = analyze(str(path))[1].block_names
    assignment = {b: "cloud" if i < SHARED_BLOCKS else "device" for i, b in enumerate(blocks)}
    net = two_tier()
    deployment = build_deployment(path, assignment, net, agents=False)
    feeds = [random_image() for _ in range(requests)]
    result: dict[str, Any] = {}
    for size in (1, batch):
        serving = NodeServing(max_batch_size=size, batch_wait_timeout_s=0.01)
        with connect_ray(deployment, net, serving=serving) as served:
            with ThreadPoolExecutor(callers) as pool:
                list(pool.map(served.infer, feeds[:callers]))  # warm-up
                start = time.perf_counter()
                list(pool.map(served.infer, feeds))
                wall_s = time.perf_counter() - start
            (report,) = served.replicas().values()
        result[f"batch_{size}"] = {
            "throughput_per_s": requests / wall_s,
            "batches": report.batches,
            "largest_batch": report.largest_batch,
        }
    gain = result[f"batch_{batch}"]["throughput_per_s"] / result["batch_1"]["throughput_per_s"]
    return {**result, "gain": gain, "callers": callers, "requests": requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ray, serve = import_ray()
    # One embedded Ray for both parts, offering every node's resource; sessions attach to it.
    start_embedded(["n1", "n2", "n3", "cloud"])
    try:
        overhead = bench_overhead(args.repeats, ray.get_runtime_context().gcs_address)
        batching = bench_batching(args.requests, args.callers, args.batch)
    finally:
        serve.shutdown()
        ray.shutdown()
    emit_json(
        {
            "machine": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "ray": ray.__version__,
            "overhead": overhead,
            "batching": batching,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
