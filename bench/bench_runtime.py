"""Runtime benchmarks on loopback with real agent processes.

1. A 4.9 MB float32 tensor (1×3×640×640) pushed from one agent to another: the receiver's
   measured transfer time (arrival − sender's ``sent_at``), median over repetitions, through
   shared memory (the default between agents of one host) and through the sockets (agents
   started with ``--no-shared-memory``), beside the same message between two bare pyzmq
   sockets in two processes (what loopback TCP costs here).
2. YOLO11n split into three components on three agents against one monolithic ORT session with
   the same settings (ORT_ENABLE_ALL, one intra-op thread, no spinning), median end-to-end
   latency, and where the difference goes: the same three components run one after another in
   this process (what splitting the graph costs), the agents' compute and the transfers.
3. Pipelined throughput of a two-stage plan (YOLO11n cut where half the MACs are done) with
   several requests in flight, against 1 / slowest stage (a stage's time is its node's median
   compute per request, one request at a time), against cores / Σ stages (the bound when stages
   share the cores) and against 1 / slowest stage as timed during the pipelined run (what the
   stages' compute became when they ran at once: the machine's contention, not the runtime's).

Parts 2 and 3 use shared memory between the agents unless ``--no-shared-memory``.

Usage: python bench/bench_runtime.py [--repeats 30] [--no-shared-memory] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import zmq
from onnx import TensorProto, helper

from qsplit.assets import bundled_model_path
from qsplit.infra import Infra, Node
from qsplit.model import analyze
from qsplit.runtime import Deployment, build_deployment, connect

SHAPE = (1, 3, 640, 640)
Feeds = dict[str, np.ndarray]


SHARED_MEMORY = True
"""Whether :func:`agents` lets agents use shared memory (``--no-shared-memory`` clears it)."""


@contextmanager
def agents(*names: str, shared_memory: bool | None = None) -> Iterator[dict[str, str]]:
    """Agent processes on free loopback ports; always stopped."""
    command = [sys.executable, "-m", "qsplit", "agent", "--listen", "127.0.0.1:0"]
    if not (SHARED_MEMORY if shared_memory is None else shared_memory):
        command.append("--no-shared-memory")
    command.append("--name")
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


def session_options() -> ort.SessionOptions:
    """What every agent runs its components with (see ``qsplit.runtime._agent``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def random_image() -> Feeds:
    return {"images": np.random.default_rng(0).random(SHAPE, dtype=np.float32)}


# -- 1. one tensor between two agents ---------------------------------------------------------
def relay_model(path: Path) -> Path:
    """``x → /a/Relu → y (4.9 MB) → /b/ReduceMax → out``: block ``a`` on one agent, ``b`` on
    the other, so exactly ``y`` crosses between agents."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))
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


def bench_tensor(repeats: int, workdir: Path, shared_memory: bool) -> float:
    path = relay_model(workdir / "relay.onnx")
    blocks = analyze(str(path))[1].block_names
    with agents("a", "b", shared_memory=shared_memory) as addresses:
        net = infra(addresses)
        deployment = build_deployment(path, dict(zip(blocks, ("a", "b"), strict=True)), net)
        feeds = {"x": np.random.default_rng(0).random(SHAPE, dtype=np.float32)}
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


def _bare_receiver(address: str, count: int, results: Any) -> None:
    with zmq.Context() as context, context.socket(zmq.ROUTER) as socket:
        socket.bind(f"tcp://{address}")
        results.put("ready")
        times = []
        for _ in range(count):
            frames = socket.recv_multipart(copy=False)
            times.append(time.time() - float(bytes(frames[1].buffer)))
        results.put(times)


def bench_bare_zmq(repeats: int) -> float:
    """The same 4.9 MB message DEALER → ROUTER between two processes, without qsplit."""
    with socket_port() as port:
        address = f"127.0.0.1:{port}"
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    receiver = spawn.Process(target=_bare_receiver, args=(address, repeats + 3, results))
    receiver.start()
    results.get(timeout=30)
    array = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    with zmq.Context() as context, context.socket(zmq.DEALER) as socket:
        socket.connect(f"tcp://{address}")
        for _ in range(repeats + 3):
            stamp = str(time.time()).encode()
            socket.send_multipart([stamp, memoryview(array).cast("B")], copy=False)
            time.sleep(0.05)  # one message in flight, as between two pipeline stages
        times = results.get(timeout=60)
    receiver.join(timeout=10)
    return statistics.median(times[3:])


@contextmanager
def socket_port() -> Iterator[int]:
    """A free loopback port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


# -- 2. YOLO11n in three components against one session ---------------------------------------
def split_by_thirds(blocks: tuple[str, ...], nodes: tuple[str, ...]) -> dict[str, str]:
    size = -(-len(blocks) // len(nodes))
    return {b: nodes[i // size] for i, b in enumerate(blocks)}


def run_chain(deployment: Deployment, sessions: list[ort.InferenceSession], feeds: Feeds) -> None:
    """The deployment's components one after another in this process, no transport."""
    values = dict(feeds)
    for spec, session in zip(deployment.components, sessions, strict=True):
        outputs = session.run(list(spec.outputs), {i: values[i] for i in spec.inputs})
        values.update(zip(spec.outputs, outputs, strict=True))


def bench_yolo(repeats: int) -> dict[str, float]:
    path = bundled_model_path("yolo11n")
    blocks = analyze(str(path))[1].block_names
    nodes = ("n1", "n2", "n3")
    feeds = random_image()
    mono = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    samples: dict[str, list[float]] = {
        k: [] for k in ("monolithic", "chain", "one_agent", "split", "compute", "transfers")
    }
    with agents(*nodes) as addresses:
        net = infra(addresses)
        deployment = build_deployment(path, split_by_thirds(blocks, nodes), net)
        whole = build_deployment(path, dict.fromkeys(blocks, nodes[0]), net)
        chain = [
            ort.InferenceSession(c.onnx, session_options(), providers=["CPUExecutionProvider"])
            for c in deployment.components
        ]
        with connect(deployment, net) as session, connect(whole, net) as remote:
            for _ in range(3):
                session.infer(feeds)
                remote.infer(feeds)
                mono.run(None, feeds)
                run_chain(deployment, chain, feeds)
            for _ in range(repeats):  # interleaved, so load changes hit all alike
                start = time.perf_counter()
                mono.run(None, feeds)
                samples["monolithic"].append(time.perf_counter() - start)
                start = time.perf_counter()
                run_chain(deployment, chain, feeds)
                samples["chain"].append(time.perf_counter() - start)
                samples["one_agent"].append(remote.infer_timed(feeds)[1].latency_s)
                _, record = session.infer_timed(feeds)
                samples["split"].append(record.latency_s)
                samples["compute"].append(sum(r.compute_s for r in record.runs))
                samples["transfers"].append(sum(t.transfer_s for t in record.transfers))
    medians = {f"{k}_s": statistics.median(v) for k, v in samples.items()}
    return {**medians, "ratio": medians["split_s"] / medians["monolithic_s"]}


# -- 3. pipelined two-stage plan --------------------------------------------------------------
def split_by_macs(path: Path, nodes: tuple[str, str]) -> dict[str, str]:
    """Blocks in graph order, cut where half the model's MACs are done."""
    graph = analyze(str(path))[1]
    done, assignment = 0, {}
    for block in graph.blocks:
        assignment[block.name] = nodes[0] if done < graph.total_macs / 2 else nodes[1]
        done += block.macs
    return assignment


def bench_pipeline(repeats: int, in_flight: int) -> dict[str, float]:
    path = bundled_model_path("yolo11n")
    nodes = ("s1", "s2")
    feeds = random_image()
    with agents(*nodes) as addresses:
        net = infra(addresses)
        deployment = build_deployment(path, split_by_macs(path, nodes), net)
        with connect(deployment, net) as session:
            for _ in range(3):
                session.infer(feeds)
            stages: dict[str, list[float]] = {n: [] for n in nodes}
            for _ in range(repeats):
                _, record = session.infer_timed(feeds)
                for run in record.runs:
                    stages[run.node].append(run.compute_s)
            stage_s = {n: statistics.median(v) for n, v in stages.items()}
            count = 4 * repeats
            start = time.perf_counter()
            results = list(session.stream([feeds] * count, max_in_flight=in_flight))
            throughput = count / (time.perf_counter() - start)
            assert all(r.error is None for r in results)
    streamed = {
        n: statistics.median(r.compute_s for x in results for r in x.record.runs if r.node == n)
        for n in nodes
    }
    slowest = max(stage_s.values())
    cores = os.cpu_count() or 1
    shared_bound = min(1 / slowest, cores / sum(stage_s.values()))
    return {
        **{f"stage_{n}_s": s for n, s in stage_s.items()},
        **{f"stage_{n}_pipelined_s": s for n, s in streamed.items()},
        "throughput_per_s": throughput,
        "bound_per_s": 1 / slowest,
        "throughput_vs_bound": throughput * slowest,
        "shared_cores_bound_per_s": shared_bound,
        "throughput_vs_shared_bound": throughput / shared_bound,
        "throughput_vs_pipelined_bound": throughput * max(streamed.values()),
    }


def machine() -> Mapping[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--in-flight", type=int, default=3)
    parser.add_argument(
        "--no-shared-memory",
        action="store_true",
        help="parts 2 and 3 over the sockets only",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/runtime.json"))
    args = parser.parse_args()
    global SHARED_MEMORY
    SHARED_MEMORY = not args.no_shared_memory
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as workdir:
        tensor_s = bench_tensor(args.repeats, Path(workdir), shared_memory=True)
        tensor_sockets_s = bench_tensor(args.repeats, Path(workdir), shared_memory=False)
    bare_s = bench_bare_zmq(args.repeats)
    print(
        f"4.9 MB tensor agent→agent: median {tensor_s * 1e3:.2f} ms in shared memory, "
        f"{tensor_sockets_s * 1e3:.2f} ms through the sockets "
        f"(bare pyzmq, same message: {bare_s * 1e3:.2f} ms)"
    )
    print(f"agents use shared memory in what follows: {SHARED_MEMORY}")
    yolo = bench_yolo(args.repeats)
    print(
        f"YOLO11n 3 agents: median {yolo['split_s'] * 1e3:.1f} ms vs monolithic "
        f"{yolo['monolithic_s'] * 1e3:.1f} ms (× {yolo['ratio']:.3f}); whole model on one "
        f"agent {yolo['one_agent_s'] * 1e3:.1f} ms; the 3 components "
        f"chained in-process {yolo['chain_s'] * 1e3:.1f} ms; agents' compute "
        f"{yolo['compute_s'] * 1e3:.1f} ms, transfers {yolo['transfers_s'] * 1e3:.1f} ms"
    )
    pipe = bench_pipeline(args.repeats, args.in_flight)
    stages = ", ".join(
        f"{n} {pipe[f'stage_{n}_s'] * 1e3:.1f} ms alone / "
        f"{pipe[f'stage_{n}_pipelined_s'] * 1e3:.1f} ms pipelined"
        for n in ("s1", "s2")
    )
    print(
        f"pipelined 2 stages ({stages}), {args.in_flight} in flight: "
        f"{pipe['throughput_per_s']:.2f} req/s = {pipe['throughput_vs_bound']:.0%} of 1/slowest, "
        f"{pipe['throughput_vs_shared_bound']:.0%} of min(1/slowest, cores/Σ stages), "
        f"{pipe['throughput_vs_pipelined_bound']:.0%} of 1/slowest stage as timed while pipelined"
    )
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": machine(),
                "load_average": {"before": load_before, "after": load_after},
                "repeats": args.repeats,
                "shared_memory": SHARED_MEMORY,
                "tensor_s": tensor_s,
                "tensor_sockets_s": tensor_sockets_s,
                "bare_zmq_s": bare_s,
                "yolo": yolo,
                "pipeline": pipe,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
