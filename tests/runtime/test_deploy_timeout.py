"""A deploy's answer is awaited in proportion to what it sends, not for a fixed control timeout."""

from __future__ import annotations

import hashlib

import numpy as np

from qsplit.runtime._client import DEPLOY_FLOOR_BYTES_PER_S, deploy_timeout_s
from qsplit.runtime._deployment import ComponentSpec


def _spec(onnx: bytes, reference: dict[str, np.ndarray] | None = None) -> ComponentSpec:
    return ComponentSpec(
        name="c0_edge",
        node="edge",
        inputs=("x",),
        outputs=("y",),
        onnx=onnx,
        sha256=hashlib.sha256(onnx).hexdigest(),
        routes={},
        returns=("y",),
        reference=reference or {},
    )


def test_a_small_component_waits_the_control_timeout() -> None:
    assert deploy_timeout_s(10.0, _spec(b"\0" * 1000)) < 10.01


def test_a_large_component_and_its_reference_tensors_extend_the_wait() -> None:
    weights = b"\0" * 98_000_000  # a ResNet-50 component
    reference = {"x": np.zeros((1, 3, 640, 640), np.float32)}  # 4.9 MB
    waited = deploy_timeout_s(10.0, _spec(weights, reference))
    assert waited == 10.0 + (98_000_000 + reference["x"].nbytes) / DEPLOY_FLOOR_BYTES_PER_S
    assert waited > 100.0
