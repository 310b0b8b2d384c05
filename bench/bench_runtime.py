"""Runtime benchmarks on loopback with real agent processes.

1. A 4.9 MB float32 tensor (1×3×640×640) pushed from one agent to another: the receiver's
   measured transfer time (arrival − sender's ``sent_at``), median over repetitions.
2. YOLO11n split into three components on three agents against one monolithic ORT session with
   the same settings (ORT_ENABLE_ALL, one intra-op thread), median end-to-end latency.
3. Pipelined throughput of that split (several requests in flight) against 1 / slowest stage,
   where a stage's time is its node's median compute per request.

Usage: python bench/bench_runtime.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from qsplit.assets import bundled_model_path
from qsplit.infra import Infra, Node
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect


@contextmanager
def agents(*names: str) -> Iterator[dict[str, str]]:
    """Agent processes on free loopback ports; always stopped."""
    command = [sys.executable, "-m", "qsplit", "agent", "--listen", "127.0.0.1:0", "--name"]
    processes = {
        n: subprocess.Popen([*command, n], stdout=subprocess.PIPE, text=True) for n in names
    }
    try:
        yield {n: p.stdout.readline().rsplit(" ", 1)[1].strip() for n, p in processes.items()}  # type: ignore[union-attr]
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=10)
            process.stdout.close()  # type: ignore[union-attr]


def infra(addresses: dict[str, str]) -> Infra:
    nodes = tuple(Node(n, "edge", 1.0, 1.0, 2**32, address=a) for n, a in addresses.items())
    return Infra(
        device="requester", nodes=(Node("requester", "device", 1, 1, 2**32), *nodes), links=()
    )


def relay_model(path: Path) -> Path:
    """``x → /a/Relu → y (4.9 MB) → /b/ReduceMax → out``: block ``a`` on one agent, ``b`` on
    the other, so exactly ``y`` crosses between agents."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 640, 640])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 1, 1])
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["y"], "/a/Relu"),
            helper.make_node("ReduceMax", ["y"], ["out"], "/b/ReduceMax", keepdims=1),
        ],
        "relay",
        [x],
        [out],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def bench_tensor(repeats: int, workdir: Path) -> float:
    path = relay_model(workdir / "relay.onnx")
    blocks = analyze(str(path))[1].block_names
    with agents("a", "b") as addresses:
        net = infra(addresses)
        deployment = build_deployment(path, dict(zip(blocks, ("a", "b"), strict=True)), net)
        feeds = {"x": np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)}
        with connect(deployment, net) as session:
            for _ in range(3):
                session.infer(feeds)
            times = []
            for _ in range(repeats):
                _, record = session.infer_timed(feeds)
                (hop,) = [t for t in record.transfers if (t.source, t.target) == ("a", "b")]
                assert hop.bytes == 4_915_200
                times.append(hop.transfer_s)
    return statistics.median(times)


def bench_yolo(repeats: int) -> dict[str, float]:
    path = bundled_model_path("yolo11n")
    blocks = analyze(str(path))[1].block_names
    nodes = ("n1", "n2", "n3")
    size = -(-len(blocks) // len(nodes))
    assignment = {b: nodes[i // size] for i, b in enumerate(blocks)}
    feeds = {"images": np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    mono = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with agents(*nodes) as addresses:
        net = infra(addresses)
        deployment = build_deployment(path, assignment, net)
        with connect(deployment, net) as session:
            for _ in range(3):
                session.infer(feeds)
                mono.run(None, feeds)
            split, whole, stages = [], [], {n: [] for n in nodes}
            for _ in range(repeats):  # interleaved, so load changes hit both alike
                start = time.perf_counter()
                mono.run(None, feeds)
                whole.append(time.perf_counter() - start)
                _, record = session.infer_timed(feeds)
                split.append(record.latency_s)
                for run in record.runs:
                    stages[run.node].append(run.compute_s)
            slowest = max(statistics.median(v) for v in stages.values())
            count = 3 * repeats
            start = time.perf_counter()
            results = list(session.stream([feeds] * count, max_in_flight=3))
            throughput = count / (time.perf_counter() - start)
            assert all(r.error is None for r in results)
    return {
        "monolithic_s": statistics.median(whole),
        "split_s": statistics.median(split),
        "ratio": statistics.median(split) / statistics.median(whole),
        "slowest_stage_s": slowest,
        "throughput_per_s": throughput,
        "throughput_vs_bound": throughput * slowest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        tensor_s = bench_tensor(args.repeats, Path(workdir))
    print(f"4.9 MB tensor agent→agent: median {tensor_s * 1e3:.2f} ms")
    yolo = bench_yolo(args.repeats)
    print(
        f"YOLO11n 3 agents: median {yolo['split_s'] * 1e3:.1f} ms vs monolithic "
        f"{yolo['monolithic_s'] * 1e3:.1f} ms (× {yolo['ratio']:.3f})"
    )
    print(
        f"pipelined (3 in flight): {yolo['throughput_per_s']:.2f} req/s; slowest stage "
        f"{yolo['slowest_stage_s'] * 1e3:.1f} ms → {yolo['throughput_vs_bound']:.0%} of 1/slowest"
    )


if __name__ == "__main__":
    main()
