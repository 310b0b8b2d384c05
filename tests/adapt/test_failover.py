"""Failover with real agents: a node killed mid-stream loses no request, and is taken back
when it answers again (issue 15, item 4)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from helpers import branchy, problem

from agents import infra_for, restart, running_agents, stop
from qsplit.adapt import AdaptiveSession, AdaptPolicy, Candidate, device_only
from qsplit.plan import plan

REQUESTS = 24
KILL_AT = 8
POLICY = AdaptPolicy(min_interval_s=0.5, check_interval_s=0.2)


def test_a_killed_nodes_requests_complete_on_the_device_and_it_is_taken_back(
    tmp_path: Path,
) -> None:
    case = branchy(tmp_path, REQUESTS)
    with running_agents("device", "edge", args=("--emulated",)) as agents:
        infra = infra_for(agents)
        slow_device = problem(case.graph, infra, {"device": 0.02, "edge": 0.002})
        best = plan(slow_device, with_baselines=False)
        assert set(best.assignment.values()) == {"edge"}
        start = Candidate(best.assignment, best.quantized)

        def feeds():
            for i, one in enumerate(case.feeds):
                if i == KILL_AT:
                    agents["edge"].kill()
                yield one

        with AdaptiveSession(slow_device, start, case.path, policy=POLICY, timeout_s=5) as s:
            edge_plan = s.plan_id
            results = list(s.stream(feeds(), max_in_flight=2))
            assert [r.index for r in results] == list(range(REQUESTS))  # none lost or repeated
            for r in results:
                assert r.result.error is None, r.result.error
                np.testing.assert_allclose(
                    r.result.outputs["out"], case.expected[r.index], atol=1e-4
                )
            failovers = [d for d in s.decisions if d.kind == "failover"]
            assert [d.node for d in failovers] == ["edge"]
            fallback = failovers[0].to_plan
            assert fallback != edge_plan
            assert s.candidate == device_only(slow_device)
            assert results[-1].plan_id == fallback
            assert any(r.attempts == 2 for r in results)  # in flight on edge, answered again

            revived = restart(agents["edge"])
            try:
                deadline = time.monotonic() + 30
                while s.plan_id != edge_plan and time.monotonic() < deadline:
                    time.sleep(0.1)
                kinds = [d.kind for d in s.decisions]
                assert "node-back" in kinds and kinds[-1] in ("switch", "retired"), kinds
                assert s.plan_id == edge_plan
                again = list(s.stream(case.feeds[:3]))
                assert {r.plan_id for r in again} == {edge_plan}
                for r in again:
                    np.testing.assert_allclose(
                        r.result.outputs["out"], case.expected[r.index], atol=1e-4
                    )
            finally:
                stop(revived.process)
