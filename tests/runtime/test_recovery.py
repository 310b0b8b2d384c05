"""A session recovers by itself when a frozen or restarted agent comes back (issue 13, item 5).

Real processes: an agent frozen with SIGSTOP for longer than the request deadline and resumed, or
killed and restarted at its address. Requests meanwhile fail within their deadline naming the
node; afterwards the same session is served again, without the caller redeploying.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

import synthetic
from agents import infra_for, restart, running_agents, stop
from conftest import random_feeds, session
from qsplit.errors import TransportError
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect

DEADLINE_S = 4.0
FROZEN_S = 5.0
"""Longer than the request deadline, so requests fail naming the frozen node meanwhile."""
RECOVERY_ATTEMPTS = 20
"""Requests tried after the agent is back; recovery must come within them (each is bounded
by its deadline, so the loop ends whatever happens)."""


@pytest.fixture
def split(tmp_path: Path):
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    half = len(blocks) // 2
    model = onnx.load(path)
    feeds = random_feeds(model)
    (expected, *_) = session(model).run(None, feeds)
    return path, {b: "a" if i < half else "b" for i, b in enumerate(blocks)}, feeds, expected


def first_success(s, feeds) -> tuple[int, np.ndarray]:
    """The attempt at which a request first succeeds, and its output."""
    for attempt in range(RECOVERY_ATTEMPTS):
        try:
            return attempt, s.infer(feeds)["out"]
        except TransportError as exc:
            assert exc.peer == "b", exc
            time.sleep(0.5)
    raise AssertionError(f"the session did not recover in {RECOVERY_ATTEMPTS} requests")


def test_a_session_recovers_after_its_agent_was_frozen(split) -> None:
    path, assignment, feeds, expected = split
    with running_agents("a", "b") as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, assignment, infra)
        with connect(deployment, infra, timeout_s=DEADLINE_S) as s:
            np.testing.assert_allclose(s.infer(feeds)["out"], expected, atol=1e-4)
            pid = agents["b"].process.pid
            os.kill(pid, signal.SIGSTOP)
            try:
                with pytest.raises(TransportError) as frozen:
                    s.infer(feeds)
                assert frozen.value.peer == "b" and "'b'" in str(frozen.value)
                time.sleep(FROZEN_S)
            finally:
                os.kill(pid, signal.SIGCONT)
            _, output = first_success(s, feeds)
            np.testing.assert_allclose(output, expected, atol=1e-4)
            assert s.health()["b"]["ok"]


def test_a_session_redeploys_to_a_restarted_agent_by_itself(split) -> None:
    path, assignment, feeds, expected = split
    with running_agents("a", "b") as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, assignment, infra)
        with connect(deployment, infra, timeout_s=DEADLINE_S) as s:
            s.infer(feeds)
            agents["b"].kill()
            with pytest.raises(TransportError) as dead:
                s.infer(feeds)
            assert dead.value.peer == "b"
            revived = restart(agents["b"])
            try:
                _, output = first_success(s, feeds)
                np.testing.assert_allclose(output, expected, atol=1e-4)
                held = s.health()["b"]["deployments"][deployment.id]
                assert held == sorted(c.name for c in deployment.components if c.node == "b")
            finally:
                stop(revived.process)
