"""Bounded resources (issue 13, item 4): what open requests hold on an agent is capped, and
every way a request ends — undeploy, expiry — gives it back (the agent's buffer accounting
returns to 0)."""

from __future__ import annotations

import time

import numpy as np
from onnx import TensorProto, helper

from agents import rss_mib, running_agents
from qsplit.runtime._wire import Message, encode
from raw import deploy_frames, exchange

MIB = 2**20
SIDE = 1024
"""A [SIDE, SIDE] float32 input is 4 MiB."""
SETTLE_S = 30.0
"""Generous bound for the agent's expiry sweep on a loaded machine (not a timing assertion)."""


def adder() -> bytes:
    """``out = x + y``: a request holding only ``x`` waits for ``y`` — a partial request."""
    x, y, out = (
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [SIDE, SIDE]) for n in ["x", "y", "out"]
    )
    graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["out"])], "add", [x, y], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def partial(address: str, req: int, deadline: float, *, wait_s: float = 1.0) -> dict | None:
    """Send one partial request; the agent's answer within ``wait_s`` (a refusal), or ``None``:
    a held request is never answered, so ``wait_s=0`` sends without waiting for one."""
    body = {"dep": "d", "req": str(req), "reply_to": b"req", "from": "device", "sent_at": 0.0,
            "deadline": deadline, "relay": []}  # fmt: skip
    x = np.ones((SIDE, SIDE), np.float32)
    message = encode(Message("tensors", body, {"x": x}))
    return exchange(address, message, identity=b"req", wait_s=wait_s)


def stats(address: str) -> dict:
    return exchange(address, encode(Message("stats", {"cid": 1})))


def stats_once_buffered(address: str, buffered_bytes: int) -> dict:
    """The agent's stats once it buffers ``buffered_bytes`` (or after :data:`SETTLE_S`): requests
    sent without waiting for an answer arrive on their own connections, maybe after a ``stats``
    sent later."""
    deadline = time.monotonic() + SETTLE_S
    while (now := stats(address))["buffered_bytes"] != buffered_bytes:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return now


def test_buffered_bytes_are_capped_and_undeploy_frees_them() -> None:
    args = ("--max-buffered-mb", "20", "--max-message-mb", "8")
    with running_agents("a", args=args) as agents:
        address = agents["a"].address
        assert exchange(address, deploy_frames(adder(), ["x", "y"], ["out"], dep="d"))["ok"]
        answers = [partial(address, i, deadline=1e12) for i in range(8)]
        assert answers[:5] == [None] * 5  # held, waiting for y
        refused = [a["error"] for a in answers[5:]]
        assert all("would pass its limit" in e and "'a'" in e for e in refused)
        held = stats(address)
        assert held["buffered_bytes"] == 5 * 4 * MIB and held["open_requests"] == 5
        exchange(address, encode(Message("undeploy", {"cid": 2, "dep": "d"})))
        freed = stats(address)
        assert freed["buffered_bytes"] == 0 and freed["open_requests"] == 0


def test_the_agent_clamps_a_far_deadline_and_expiry_frees_everything() -> None:
    with running_agents("a", args=("--max-deadline", "1", "--max-message-mb", "8")) as agents:
        address = agents["a"].address
        assert exchange(address, deploy_frames(adder(), ["x", "y"], ["out"], dep="d"))["ok"]
        for i in range(4):
            partial(address, i, deadline=1e12)  # the sender asks for ~forever
        deadline = time.monotonic() + SETTLE_S
        while stats(address)["open_requests"] and time.monotonic() < deadline:
            time.sleep(0.5)
        after = stats(address)
        assert after["buffered_bytes"] == 0 and after["counts"]["expired"] == 4


def test_the_agents_memory_returns_near_its_start_after_undeploy_and_expiry() -> None:
    """The audit's case, scaled down: partial requests held with a far deadline took an agent
    from 149 to 789 MiB for good. Now its resident memory comes back after an undeploy, and
    after expiry, to within 10 % of where it started."""
    args = ("--max-buffered-mb", "200", "--max-message-mb", "8")
    with running_agents("a", args=args) as agents:
        address, pid = agents["a"].address, agents["a"].process.pid
        assert exchange(address, deploy_frames(adder(), ["x", "y"], ["out"], dep="d"))["ok"]
        start = rss_mib(pid)
        for i in range(20):
            partial(address, i, deadline=1e12, wait_s=0)
        assert stats_once_buffered(address, 20 * 4 * MIB)["buffered_bytes"] == 20 * 4 * MIB
        held = rss_mib(pid)
        assert held - start > 60  # the 80 MiB are really resident
        exchange(address, encode(Message("undeploy", {"cid": 2, "dep": "d"})))
        assert stats(address)["buffered_bytes"] == 0
        undeployed = rss_mib(pid)
        assert exchange(address, deploy_frames(adder(), ["x", "y"], ["out"], dep="d"))["ok"]
        expiry = time.time() + 30  # every one still open when the last arrives
        for i in range(20):
            partial(address, 100 + i, deadline=expiry)
        deadline = time.monotonic() + 30 + SETTLE_S
        while stats(address)["open_requests"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stats(address)["counts"]["expired"] == 20
        expired = rss_mib(pid)
    assert undeployed <= 1.1 * start, (start, held, undeployed)
    assert expired <= 1.1 * start, (start, held, expired)


def test_a_deadline_that_is_not_a_time_is_refused() -> None:
    with running_agents("a") as agents:
        address = agents["a"].address
        assert exchange(address, deploy_frames(adder(), ["x", "y"], ["out"], dep="d"))["ok"]
        answer = partial(address, 0, deadline=float("nan"))
        assert answer is not None and "deadline" in answer["error"]
        assert stats(address)["buffered_bytes"] == 0
