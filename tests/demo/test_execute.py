"""A configuration whose request fails reports that failure, not the undeploy's after it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from qsplit.demo import _execute
from qsplit.errors import TransportError


class _FailingSession:
    """An agent that died mid-request: the request fails, and so does every later call."""

    def __init__(self) -> None:
        self.undeploy_calls = 0

    def infer(self, feeds):
        raise TransportError("node 'edge' disconnected while request 0 waited on component c1")

    def undeploy(self) -> None:
        self.undeploy_calls += 1
        raise TransportError("node 'edge' did not answer 'undeploy' within 10 s")


def test_the_request_error_is_raised_and_undeploy_is_still_tried(monkeypatch) -> None:
    session = _FailingSession()

    @contextlib.contextmanager
    def connect(*args, **kwargs):
        yield session

    monkeypatch.setattr(_execute, "build_deployment", lambda *a, **k: object())
    monkeypatch.setattr(_execute, "connect", connect)
    with pytest.raises(TransportError, match="disconnected while request 0"):
        _execute.run_configuration(
            Path("m.onnx"), {}, (), None, [{}],
            requests=1, timeout_s=1.0, calibration=Path("c"), preprocess=None, profiles={},
            reference=None, noise_feeds=0, results_path=Path("r.json"), on_request=lambda: None,
        )  # fmt: skip
    assert session.undeploy_calls == 1
