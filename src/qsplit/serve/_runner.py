"""One component in ONNX Runtime, run on one request or on a batch of concurrent requests.

Batching concatenates the requests' inputs along the first (batch) dimension and runs the
component once. Components are extracted at the shapes the plan records (batch 1), so the
batched session is the same graph with its inputs' and outputs' first dimension made symbolic.
Not every component allows that — a Reshape or a Split with a constant that spells out batch 1
would fold rows into each other — so the widened graph is *proven* on start: two random
requests run as one batch must give each its own single-run outputs, row for row. A component
that fails the proof (or has an input whose first dimension is not 1) runs its batches one
request at a time, which is correct for any graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

Feeds = Mapping[str, np.ndarray]

PROOF_ROWS = 2
"""Requests in the start-up proof of a widened component."""


class ComponentRunner:
    """A component's ORT sessions: one at the extracted shapes, and one taking batches when
    ``max_batch_size`` > 1 and the component proved it can (:attr:`batches`)."""

    def __init__(
        self,
        onnx_bytes: bytes,
        outputs: Sequence[str],
        *,
        max_batch_size: int = 1,
        threads: int = 1,
        optimize: bool = True,
    ) -> None:
        self.outputs = tuple(outputs)
        self._threads, self._optimize = threads, optimize
        self._single = self._session(onnx_bytes)
        self._batched: ort.InferenceSession | None = None
        if max_batch_size > 1:
            widened = widen_batch(onnx_bytes)
            if widened is not None:
                candidate = self._session(widened)
                if self._agrees(candidate):
                    self._batched = candidate

    @property
    def batches(self) -> bool:
        """Whether concurrent requests run as one concatenated batch."""
        return self._batched is not None

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        values = self._single.run(list(self.outputs), dict(feeds))
        return dict(zip(self.outputs, values, strict=True))

    def run_many(self, requests: Sequence[Feeds]) -> list[dict[str, np.ndarray]]:
        """Each request's outputs, in order; one ORT run for all when the component batches."""
        if self._batched is None or len(requests) == 1:
            return [self.run(feeds) for feeds in requests]
        stacked = {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}
        values = self._batched.run(list(self.outputs), stacked)
        return [
            {name: value[row : row + 1] for name, value in zip(self.outputs, values, strict=True)}
            for row in range(len(requests))
        ]

    def _session(self, onnx_bytes: bytes) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self._optimize
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def _agrees(self, batched: ort.InferenceSession) -> bool:
        """Whether ``batched`` gives each of two random requests its own single-run outputs."""
        rng = np.random.default_rng(0)
        requests = [
            {i.name: _random(i, rng) for i in self._single.get_inputs()} for _ in range(PROOF_ROWS)
        ]
        alone = [self._single.run(list(self.outputs), r) for r in requests]
        stacked = {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}
        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # a failing proof is an answer, not an error to log
        try:
            together = batched.run(list(self.outputs), stacked, quiet)
        except Exception:  # ORT's own error types: the widened graph does not run
            return False
        for index, value in enumerate(together):
            if value.shape[:1] != (PROOF_ROWS,):
                return False
            for row, single in enumerate(alone):
                if not _close(value[row : row + 1], single[index]):
                    return False
        return True


def widen_batch(onnx_bytes: bytes) -> bytes | None:
    """The component with a symbolic first dimension on its inputs and outputs (shape
    annotations of intermediate tensors dropped, ORT infers them again), or ``None`` when an
    input or output does not have batch 1 first."""
    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    ends = [v for v in graph.input if v.name not in initializers] + list(graph.output)
    for value in ends:
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].dim_value != 1:
            return None
    for value in ends:
        first = value.type.tensor_type.shape.dim[0]
        first.Clear()
        first.dim_param = "batch"
    del graph.value_info[:]
    return model.SerializeToString()


def _random(spec: ort.NodeArg, rng: np.random.Generator) -> np.ndarray:
    shape = [d if isinstance(d, int) else 1 for d in spec.shape]
    if spec.type == "tensor(float)":
        return rng.standard_normal(shape).astype(np.float32)
    if spec.type == "tensor(int8)":
        return rng.integers(-128, 128, shape, dtype=np.int8)
    if spec.type == "tensor(uint8)":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return np.zeros(shape, dtype=_NUMPY.get(spec.type, np.float32))


_NUMPY = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    """Float outputs within 1e-4 (batched kernels may sum in another order); integer ones
    (int8 after a QuantizeLinear) within one step, the rounding of such a difference."""
    if got.shape != want.shape:
        return False
    if np.issubdtype(want.dtype, np.floating):
        return bool(np.allclose(got, want, rtol=1e-4, atol=1e-4))
    return bool(np.all(np.abs(got.astype(np.int64) - want.astype(np.int64)) <= 1))
