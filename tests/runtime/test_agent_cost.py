"""What an agent costs besides its components, read from /proc (Linux): CPU time and page
faults, never wall-clock time.

On a host slowed by a CPU quota the testbed's cloud agent overran its padded target
(docs/BENCHMARKS.md, host independence). These tests pin down the two things that were checked
in the agent process: its idle threads take no CPU from the quota, and a component padded to its
profiled time has paid its cold start at deploy, not in its first request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agents import AgentProcess, infra_for, running_agents
from qsplit.assets import bundled_model_path
from qsplit.model import analyze
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.runtime import build_deployment, connect

IDLE_CPU_S = 0.02
"""CPU time all of an idle agent's threads may use in a second: its heartbeat and watchdog
wake every 0.5 s for microseconds; a thread polling its socket would take the whole second."""
FIRST_REQUEST_FAULTS = 4000
"""Page faults the first request may cause in an agent that warmed its component up: measured
770, 768 and 0 for the first three requests (receiving the input), 10.3k for the first one
without the warm-up."""


def _cpu_s(pid: int) -> dict[str, float]:
    """CPU time so far of each thread of ``pid`` (``name/tid`` → seconds, from schedstat)."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        name = (task / "comm").read_text().strip()
        times[f"{name}/{task.name}"] = int((task / "schedstat").read_text().split()[0]) / 1e9
    return times


def _minor_faults(pid: int) -> int:
    """Minor page faults of every thread of ``pid`` so far (field 10 of /proc/PID/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[7])


def test_an_idle_agents_threads_use_no_cpu() -> None:
    with running_agents("idle", args=("--emulated",)) as agents:
        pid = agents["idle"].process.pid
        time.sleep(0.5)  # past start-up
        before = _cpu_s(pid)
        time.sleep(1.0)
        after = _cpu_s(pid)
    used = {t: after[t] - before.get(t, 0.0) for t in after}
    assert sum(used.values()) < IDLE_CPU_S, used


def test_a_padded_component_is_warm_before_its_first_request() -> None:
    """The emulating agent runs the whole YOLO11n, padded to a profiled time, as one
    component; its first request faults in no more memory than receiving the input takes."""
    path = bundled_model_path("yolo11n")
    _, graph = analyze(str(path))
    timing = BlockTiming(fp32_s=0.005, int8_s=None, fp32_spread_s=0.0, int8_spread_s=0.0)
    profile = ComputeProfile(
        "cloud", graph.model.sha256, graph.granularity, dict.fromkeys(graph.block_names, timing)
    )
    feeds = {"images": np.zeros((1, 3, 640, 640), np.float32)}
    with running_agents("cloud", args=("--emulated",)) as agents:
        infra = infra_for(agents)
        assignment = dict.fromkeys(graph.block_names, "cloud")
        deployment = build_deployment(path, assignment, infra, profiles={"cloud": profile})
        with connect(deployment, infra) as s:
            faults = [_request_faults(agents["cloud"], lambda: s.infer(feeds)) for _ in range(3)]
    assert faults[0] < FIRST_REQUEST_FAULTS, faults


def _request_faults(agent: AgentProcess, request: Callable[[], object]) -> int:
    """Minor page faults of ``agent`` while it serves ``request``."""
    before = _minor_faults(agent.process.pid)
    request()
    time.sleep(0.1)  # the agent's report is sent before its last frees; let them settle
    return _minor_faults(agent.process.pid) - before
