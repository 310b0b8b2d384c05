"""The requester's fixed costs, measured with null requests through the real agents.

A block's profile times ONNX Runtime alone and a link's probe times messages between agents, so
neither contains what the requester itself spends on a request: handing the inputs to the agent
on its own host, receiving the outputs back from it, and its bookkeeping in between. For a model
that runs in a few milliseconds these are most of the latency (docs/profiling.md, *Fixed
costs*). They are measured here the only way that includes them: requests of a model that does
next to nothing (one ``Relu``), deployed on the requester's own node, sent by a real session,
timed as every other request is.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from qsplit.infra import Infra
from qsplit.model import analyze
from qsplit.profile import BlockTiming, ComputeProfile, Overhead
from qsplit.runtime._client import connect
from qsplit.runtime._deployment import build_deployment

NULL_SIZES = (4, 1 << 18)
"""Floats in the null model's input and output: a message of ~nothing and one of 1 MiB, whose
difference gives the bytes' share of a local message."""
NULL_COMPUTE_S = 0.005
"""What the null component is padded to. A request that never waits is cheaper than a real one:
while a component computes, the requester and the agent's event loop fall asleep, and waking
them costs (on the loaded 2-core VM, 1.4 ms of overhead without the wait, ~3 ms with it)."""


def measure_overhead(
    infra: Infra, *, requests: int = 20, warmup: int = 3, timeout_s: float = 30.0
) -> Overhead:
    """The requesting device's :class:`Overhead`, from null requests to the agent on its host.

    Each request's local messages (requester ↔ that agent: their ``transfer_s`` is sender clock
    to receiver clock on one host) give the per-message time, at two sizes for its fixed part
    and its bandwidth. ``request_s`` is the rest of the small requests' overhead (latency less
    the run's padded time): the median of the whole less the messages' medians, so that the
    model's sum for such a request is the median request. On a loaded host a burst hits one
    part of one request or another; the median of each part misses most bursts, the median of
    the whole does not (helper-cnn at load 9: 3.6 ms by parts, 6 ms measured). All are
    medians: unlike compute, which an emulated node pads to a fixed time, these run at the
    host's speed as it is, and the median is what a request meets.
    """
    small, large = (_null_requests(infra, n, requests, warmup, timeout_s) for n in NULL_SIZES)
    slope = (large.message_s - small.message_s) / (large.message_bytes - small.message_bytes)
    bandwidth = 1.0 / slope if slope > 0 else float("inf")
    message_s = max(0.0, small.message_s - small.message_bytes * max(slope, 0.0))
    return Overhead(
        request_s=max(0.0, small.overhead_s - small.messages * small.message_s),
        message_s=message_s,
        local_bandwidth_bytes_per_s=bandwidth,
    )


@dataclass(frozen=True)
class _NullRuns:
    message_s: float
    """Median time of one local message."""
    message_bytes: float
    overhead_s: float
    """Median of a request's latency less its run's padded time."""
    messages: int
    """Local messages per request."""


def _null_requests(
    infra: Infra, size: int, requests: int, warmup: int, timeout_s: float
) -> _NullRuns:
    """``requests`` null requests of ``size`` floats in and out, summarised."""
    with tempfile.TemporaryDirectory(prefix="qsplit-null-") as folder:
        path = Path(folder) / "null.onnx"
        onnx.save(_null_model(size), str(path))
        _, graph = analyze(str(path))
        device = infra.device
        timing = {b: BlockTiming(fp32_s=NULL_COMPUTE_S) for b in graph.block_names}
        profile = ComputeProfile(device, graph.model.sha256, graph.granularity, timing)
        assignment = dict.fromkeys(graph.block_names, device)
        deployment = build_deployment(path, assignment, infra, profiles={device: profile})
        feeds = {"x": np.ones((1, size), np.float32)}
        messages, overheads, counts = [], [], set()
        with connect(deployment, infra, timeout_s=timeout_s) as session:
            try:
                for _ in range(warmup):
                    session.infer(feeds)
                for _ in range(requests):
                    _, record = session.infer_timed(feeds)
                    local = [t.transfer_s for t in record.transfers if t.source == t.target]
                    messages.extend(local)
                    counts.add(len(local))
                    overheads.append(record.latency_s - sum(r.compute_s for r in record.runs))
            finally:
                session.undeploy()  # the agent keeps deployments until told otherwise
    return _NullRuns(
        statistics.median(messages), float(size * 4), statistics.median(overheads), max(counts)
    )


def _null_model(size: int) -> onnx.ModelProto:
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="null")],
        "null",
        [value("x", TensorProto.FLOAT, [1, size])],
        [value("y", TensorProto.FLOAT, [1, size])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
