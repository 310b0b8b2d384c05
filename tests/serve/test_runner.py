"""A component batches only where it proved to keep requests' rows apart (no Ray needed)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import synthetic
from conftest import random_feeds
from qsplit.serve import ComponentRunner, widen_batch


def _flattening(batch: int = 1) -> onnx.ModelProto:
    """x (batch×4) → Reshape to a constant [1, -1]: batch 1 spelled out, rows folded together."""
    shape = numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "flattening",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4 * batch])],
        [shape],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_convolutional_component_batches_and_returns_each_request_its_rows() -> None:
    model = synthetic.branchy_cnn()
    outputs = [o.name for o in model.graph.output]
    runner = ComponentRunner(model.SerializeToString(), outputs, max_batch_size=4)
    assert runner.batches
    requests = [random_feeds(model, seed) for seed in range(3)]
    for feeds, got in zip(requests, runner.run_many(requests), strict=True):
        want = runner.run(feeds)
        for name in outputs:
            assert got[name].shape == want[name].shape
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)


def test_a_component_that_folds_rows_runs_its_batches_one_by_one() -> None:
    model = _flattening()
    runner = ComponentRunner(model.SerializeToString(), ["y"], max_batch_size=4)
    assert widen_batch(model.SerializeToString()) is not None  # widened, but the proof fails
    assert not runner.batches
    requests = [{"x": np.full((1, 4), float(i), dtype=np.float32)} for i in range(3)]
    for i, got in enumerate(runner.run_many(requests)):
        np.testing.assert_array_equal(got["y"], np.full((1, 4), float(i), dtype=np.float32))


def test_only_components_at_batch_one_are_widened() -> None:
    assert widen_batch(_flattening(batch=2).SerializeToString()) is None
    assert not ComponentRunner(_flattening().SerializeToString(), ["y"]).batches  # batch size 1
