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

4. CURVE overhead: parts 1–3 over the sockets (no shared memory, so every byte is encrypted)
   with agents and requester in clear and with CURVE (``qsplit keys generate`` pairs, the
   agents admitting only the infra file's keys), the two set-ups' requests interleaved so that
   load changes hit both alike; the pipelined throughputs are run one after the other.

Parts 2 and 3 use shared memory between the agents unless ``--no-shared-memory``.

Usage: python bench/bench_runtime.py [--repeats 30] [--no-shared-memory] [--only-curve]
[--out FILE]
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import zmq
from onnx import TensorProto, helper

from qsplit.assets import bundled_model_path
from qsplit.infra import Infra, Link, Node
from qsplit.model import analyze
from qsplit.runtime import (
    Deployment,
    Session,
    build_deployment,
    connect,
    generate_keys,
    read_secret_key,
)

SHAPE = (1, 3, 640, 640)
Feeds = dict[str, np.ndarray]


SHARED_MEMORY = True
"""Whether :func:`agents` lets agents use shared memory (``--no-shared-memory`` clears it)."""


REQUESTER = "requester"


@contextmanager
def agents(
    *names: str,
    shared_memory: bool | None = None,
    keys: Path | None = None,
    extra: Sequence[str] = (),
) -> Iterator[dict[str, str]]:
    """Agent processes on free loopback ports, with CURVE when given ``keys`` (a
    :func:`make_keys` folder) and ``extra`` options; always stopped."""
    command = [sys.executable, "-m", "qsplit", "agent", "--listen", "127.0.0.1:0", *extra]
    if not (SHARED_MEMORY if shared_memory is None else shared_memory):
        command.append("--no-shared-memory")

    def own(name: str) -> list[str]:
        if keys is None:
            return ["--name", name]
        curve = ["--curve-key", str(keys / f"{name}.key"), "--infra", str(keys / "infra.yaml")]
        return ["--name", name, *curve]

    processes = {
        n: subprocess.Popen([*command, *own(n)], stdout=subprocess.PIPE, text=True) for n in names
    }
    try:
        yield {n: p.stdout.readline().rsplit(" ", 1)[1].strip() for n, p in processes.items()}  # type: ignore[union-attr]
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=10)
            process.stdout.close()  # type: ignore[union-attr]


def infra(addresses: dict[str, str], keys: Path | None = None) -> Infra:
    def key(name: str) -> str | None:
        return read_secret_key(keys / f"{name}.key")[0] if keys else None

    nodes = tuple(
        Node(n, "edge", 1.0, 1.0, 2**32, address=a, curve_public_key=key(n))
        for n, a in addresses.items()
    )
    requester = Node(REQUESTER, "device", 1, 1, 2**32, curve_public_key=key(REQUESTER))
    names = [REQUESTER, *addresses]
    # Every pair linked, so nothing is relayed; the numbers are nominal (only routing uses them).
    links = tuple(Link(a, b, 1e9, 0.0) for a in names for b in names if a != b)
    return Infra(device=REQUESTER, nodes=(requester, *nodes), links=links)


def make_keys(folder: Path, names: tuple[str, ...]) -> Path:
    """CURVE pairs for the requester and ``names`` in ``folder``, with the infra file the
    agents read the keys they admit from."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (REQUESTER, *names):
        generate_keys(folder / name, force=True)
    (folder / "infra.yaml").write_text(
        json.dumps(  # JSON is YAML
            {
                "schema_version": 1,
                "device": REQUESTER,
                "nodes": [
                    {
                        "name": name,
                        "role": "device" if name == REQUESTER else "edge",
                        "compute_power_w": 1,
                        "transmit_power_w": 1,
                        "memory_bytes": "4GB",
                        "curve_public_key": read_secret_key(folder / f"{name}.key")[0],
                    }
                    for name in (REQUESTER, *names)
                ],
                "links": [
                    {
                        "from": REQUESTER,
                        "to": n,
                        "bandwidth": "1GB/s",
                        "latency": "0s",
                        "symmetric": True,
                    }
                    for n in names
                ],
            }
        )
    )
    return folder


def curve_key(keys: Path | None) -> Path | None:
    """The requester's secret key file in a :func:`make_keys` folder."""
    return keys / f"{REQUESTER}.key" if keys else None


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
                hop = _hop(record, "a", "b")
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


# -- 4. CURVE overhead ------------------------------------------------------------------------
@contextmanager
def clear_and_curve(
    path: Path, assignment: dict[str, str], keys: Path
) -> Iterator[dict[str, Session]]:
    """A session on agents in clear and one on agents with CURVE, the same deployment, no
    shared memory (so every byte crosses the sockets, encrypted or not)."""
    names = tuple(sorted(set(assignment.values())))
    with ExitStack() as stack:
        opened = {}
        for setup, folder in (("clear", None), ("curve", keys)):
            addresses = stack.enter_context(agents(*names, shared_memory=False, keys=folder))
            net = infra(addresses, folder)
            deployment = build_deployment(path, assignment, net)
            opened[setup] = stack.enter_context(
                connect(deployment, net, curve_key=curve_key(folder))
            )
        yield opened


def bench_curve(repeats: int, in_flight: int, workdir: Path) -> dict[str, Any]:
    keys = make_keys(workdir / "keys", ("a", "b", "n1", "n2", "n3", "s1", "s2"))
    yolo = bundled_model_path("yolo11n")
    image = random_image()
    relay = relay_model(workdir / "relay.onnx")
    relay_feeds = {"x": np.random.default_rng(0).random(SHAPE, dtype=np.float32)}
    samples: dict[str, dict[str, list[float]]] = {"clear": {}, "curve": {}}

    def sample(sessions: dict[str, Session], key: str, feeds: Feeds, measure: Any) -> None:
        for setup in sessions:  # warm-up
            for _ in range(3):
                sessions[setup].infer(feeds)
        for _ in range(repeats):
            for setup, session in sessions.items():
                _, record = session.infer_timed(feeds)
                samples[setup].setdefault(key, []).append(measure(record))

    blocks = analyze(str(relay))[1].block_names
    with clear_and_curve(relay, dict(zip(blocks, ("a", "b"), strict=True)), keys) as sessions:
        sample(sessions, "tensor_s", relay_feeds, lambda r: _hop(r, "a", "b").transfer_s)
    thirds = split_by_thirds(analyze(str(yolo))[1].block_names, ("n1", "n2", "n3"))
    with clear_and_curve(yolo, thirds, keys) as sessions:
        sample(sessions, "yolo_split_s", image, lambda r: r.latency_s)
        sample(
            sessions, "yolo_transfers_s", image, lambda r: sum(t.transfer_s for t in r.transfers)
        )
    throughput = {}
    with clear_and_curve(yolo, split_by_macs(yolo, ("s1", "s2")), keys) as sessions:
        for setup, session in sessions.items():
            list(session.stream([image] * 3, max_in_flight=in_flight))
            count = 4 * repeats
            start = time.perf_counter()
            results = list(session.stream([image] * count, max_in_flight=in_flight))
            throughput[setup] = count / (time.perf_counter() - start)
            assert all(r.error is None for r in results)
    medians = {
        setup: {k: statistics.median(v) for k, v in values.items()}
        | {"pipeline_per_s": throughput[setup]}
        for setup, values in samples.items()
    }
    return {
        **medians,
        "curve_vs_clear": {k: medians["curve"][k] / v for k, v in medians["clear"].items()},
    }


def _hop(record: Any, source: str, target: str) -> Any:
    (hop,) = [t for t in record.transfers if (t.source, t.target) == (source, target)]
    return hop


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
    parser.add_argument(
        "--only-curve", action="store_true", help="part 4 alone (CURVE against clear)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/runtime.json"))
    args = parser.parse_args()
    global SHARED_MEMORY
    SHARED_MEMORY = not args.no_shared_memory
    load_before = os.getloadavg()
    if args.only_curve:
        curve = part_curve(args)
        after = os.getloadavg()
        print(f"load average before {load_before[0]:.2f}, after {after[0]:.2f}")
        load = {"before": load_before, "after": after}
        results = {"machine": machine(), "load_average": load, "repeats": args.repeats}
        save(args.out, {**results, "curve": curve})
        return
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
    curve = part_curve(args)
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    save(
        args.out,
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
            "curve": curve,
        },
    )


def part_curve(args: argparse.Namespace) -> dict[str, Any]:
    """Part 4, printed."""
    with tempfile.TemporaryDirectory() as workdir:
        curve = bench_curve(args.repeats, args.in_flight, Path(workdir))
    for key, ratio in curve["curve_vs_clear"].items():
        scale, unit = (1, "req/s") if key.endswith("per_s") else (1e3, "ms")
        clear, encrypted = curve["clear"][key] * scale, curve["curve"][key] * scale
        print(f"CURVE vs clear, {key}: {clear:.2f} → {encrypted:.2f} {unit} (× {ratio:.3f})")
    return curve


def save(path: Path, results: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
