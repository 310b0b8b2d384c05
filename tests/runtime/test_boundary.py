"""One exception boundary per message (issue 13, item 1): each message that once left an agent
process alive but deaf is sent to a real agent, which must answer it with an error where a
reply is due, count it, and still answer ``health``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest

import synthetic
from agents import running_agents
from qsplit.runtime._wire import MAX_DIMS, Message, encode
from raw import deploy_frames, exchange, frames_of, health

STUCK_DIMS = [0, 2**63 - 1, 2**63 - 1]


@pytest.fixture(scope="module")
def agent():
    with running_agents("a") as agents:
        yield agents["a"]


def relu_bytes() -> bytes:
    return synthetic.relay((1, 4)).SerializeToString()


@pytest.mark.parametrize(
    "frames",
    [
        frames_of("tensors", {}, [{"name": "x", "dtype": "float32", "shape": [1] * 65}], b"\0" * 4),
        frames_of("tensors", {}, [{"name": "x", "dtype": "float32", "shape": STUCK_DIMS}], b""),
        frames_of("shm.hello", {"pid": math.inf, "fd": 3, "segment": 1}),
        frames_of("shm.release", {"segments": [-1, "x"]}),
        frames_of(
            "tensors",
            {"dep": 1},
            [{"name": "x", "dtype": "int8", "shape": [1], "scale": math.inf, "zero_point": 0}],
            b"\0",
        ),
    ],
    ids=["65-dims", "huge-empty-shape", "shm-hello-pid-inf", "shm-release-bad", "scale-inf"],
)
def test_a_bad_frame_is_rejected_and_the_agent_keeps_serving(agent, frames) -> None:
    before = health(agent.address)
    assert exchange(agent.address, frames, wait_s=0) is None
    after = health(agent.address)
    assert after is not None and after["ok"] and after["state"] == "ok"
    assert after["uptime_s"] > before["uptime_s"]


def test_a_rejected_request_is_answered_with_the_reason(agent) -> None:
    frames = frames_of(
        "health",
        {"cid": 7},
        [{"name": "x", "dtype": "float32", "shape": [1] * (MAX_DIMS + 1)}],
        b"\0" * 4,
    )
    answer = exchange(agent.address, frames)
    assert answer["cid"] == 7 and answer["ok"] is False and answer["reason"] == "malformed"
    assert "shape" in answer["error"] and "'a'" in answer["error"]


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"peers": {"b": "bad host name"}, "routes": {"y": ["b"]}}, "bad host name"),
        ({"quant": {"out": [0.1, math.inf]}}, "zero point"),
        ({"quant": {"out": [math.nan, 3]}}, "scale"),
        ({"peers": {"b": "127.0.0.1:99999"}, "routes": {"y": ["b"]}}, "HOST:PORT"),
    ],
    ids=["peer-bad-host-name", "zero-point-inf", "scale-nan", "port-out-of-range"],
)
def test_a_bad_deploy_is_refused_naming_the_field(agent, override, complaint) -> None:
    answer = exchange(agent.address, deploy_frames(relu_bytes(), ["x"], ["out"], **override))
    assert answer is not None and not answer["ok"] and complaint in answer["error"]
    assert health(agent.address)["deployments"] == {}


def test_a_component_raising_in_ort_during_deploy_timing_is_refused(tmp_path: Path) -> None:
    """A slower node times each component at deploy on its reference inputs; ORT raising there
    (a model that fails on them) is the component's fault, answered as such. Without reference
    inputs it cannot be timed at all, and says which is missing."""
    model = synthetic.failing_gather()
    onnx_bytes = model.SerializeToString()
    failing = {"x": np.ones(16, np.float32)}  # index 16 of a 1-element array
    with running_agents("slow", args=("--padding-factor", "2")) as agents:
        address = agents["slow"].address
        answer = exchange(address, deploy_frames(onnx_bytes, ["x"], ["out"], failing))
        assert answer is not None and not answer["ok"]
        assert "c0" in answer["error"] and "timed on its reference inputs" in answer["error"]
        answer = exchange(address, deploy_frames(onnx_bytes, ["x"], ["out"]))
        assert answer is not None and not answer["ok"]
        assert "no reference value came for its input 'x'" in answer["error"]
        assert health(address)["state"] == "ok"
        assert health(address)["deployments"] == {}
    onnx.checker.check_model(model)


def test_failures_are_counted_by_reason(agent) -> None:
    frames = frames_of("tensors", {}, [{"name": "x", "dtype": "complex", "shape": [1]}], b"\0")
    stats = lambda: exchange(agent.address, frames_of("stats", {"cid": 1}, []))  # noqa: E731
    before = stats()["rejected"].get("malformed", 0)
    exchange(agent.address, frames, wait_s=0)
    exchange(agent.address, frames_of("nonsense", {"cid": 2}, []))
    assert stats()["rejected"]["malformed"] == before + 2


def test_a_tensor_no_component_reads_fails_the_request_at_once(agent) -> None:
    """A wrong input name would leave the request waiting for an input that never comes."""
    deployed = exchange(agent.address, deploy_frames(relu_bytes(), ["x"], ["out"], dep="d-in"))
    assert deployed["ok"]
    body = {
        "dep": "d-in",
        "req": "r1",
        "reply_to": b"req-1",
        "from": "device",
        "sent_at": 0.0,
        "deadline": 1e12,
        "relay": [],
    }
    tensors = {"images": np.zeros((1, 4), np.float32)}
    frames = encode(Message("tensors", body, tensors))
    answer = exchange(agent.address, frames, identity=b"req-1")
    assert answer is not None and answer["req"] == "r1"
    assert "images" in answer["error"] and "inputs of no component" in answer["error"]
    exchange(agent.address, encode(Message("undeploy", {"cid": 1, "dep": "d-in"})))
