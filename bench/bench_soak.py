"""Soak test of the runtime under chaos (issue 13, item 8).

Three agents on loopback run a three-way split of the synthetic branchy CNN; one session
streams requests through it with several in flight, while a chaos thread picks a random agent
every few seconds and either SIGKILLs and restarts it at its address, or freezes it with
SIGSTOP for 3–20 s and resumes it. Each request must either succeed (outputs equal to the whole
model's) or fail with a TransportError naming a node, within its deadline: one that takes
longer than its deadline plus a grace is counted as hung (goal 0). Recovery time after a fault
ends is the time from the resume or restart to the first request, started after it, that
succeeded. RSS of the client and of agents never restarted is compared start to end (after a
warm-up); one agent (``--steady``, default ``a``) is only ever frozen, never killed, so that at
least one agent's RSS spans the whole run. Every agent's RSS is also sampled every
:data:`RSS_EVERY_S` (the peak per node is reported).

Everything is bounded: the chaos loop stops when the requests are done, and every frozen agent
is resumed before the agents are stopped.

Usage: python bench/bench_soak.py [--requests 10000] [--in-flight 4] [--steady a] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import synthetic
from _output import emit_json
from agents import AgentProcess, infra_for, restart, rss_mib, running_agents, stop
from conftest import random_feeds, session
from qsplit.model import analyze
from qsplit.runtime import build_deployment, connect

DEADLINE_S = 5.0
HANG_GRACE_S = 2.0
"""A request slower than its deadline by more than this counts as hung."""
CHAOS_EVERY_S = (4.0, 10.0)
FROZEN_S = (3.0, 20.0)
NODES = ("a", "b", "c")
RSS_EVERY_S = 2.0


class Chaos:
    """The fault injector: one action at a time on a random agent, until stopped."""

    def __init__(self, agents: dict[str, AgentProcess], seed: int, steady: str | None) -> None:
        self.agents = dict(agents)
        self.steady = steady
        """A node that is frozen but never killed (its RSS spans the run)."""
        self.peak_rss: dict[str, float] = dict.fromkeys(agents, 0.0)
        self.restarted: set[str] = set()
        self.faults: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _sample(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):
            for node, agent in list(self.agents.items()):
                with contextlib.suppress(OSError):  # killed between the lookup and the read
                    self.peak_rss[node] = max(self.peak_rss[node], rss_mib(agent.process.pid))

    def _loop(self) -> None:
        threading.Thread(target=self._sample, daemon=True).start()
        while not self._stop.wait(self._rng.uniform(*CHAOS_EVERY_S)):
            node = self._rng.choice(NODES)
            agent = self.agents[node]
            if self._rng.random() < 0.5 and node != self.steady:
                agent.kill()
                killed = time.monotonic()
                stop(agent.process)
                self.agents[node] = restart(agent)
                self.restarted.add(node)
                self.faults.append({"kind": "kill", "node": node, "start": killed,
                                    "end": time.monotonic()})  # fmt: skip
            else:
                frozen_s = self._rng.uniform(*FROZEN_S)
                os.kill(agent.process.pid, signal.SIGSTOP)
                start = time.monotonic()
                self._stop.wait(frozen_s)  # a stop request still resumes it first
                os.kill(agent.process.pid, signal.SIGCONT)
                self.faults.append({"kind": "stop", "node": node, "start": start,
                                    "end": time.monotonic(), "frozen_s": frozen_s})  # fmt: skip


def soak(requests: int, in_flight: int, seed: int, steady: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = synthetic.save(synthetic.branchy_cnn(), Path(folder) / "branchy.onnx")
        blocks = analyze(str(path))[1].block_names
        third = -(-len(blocks) // 3)
        assignment = {b: NODES[i // third] for i, b in enumerate(blocks)}
        model = onnx.load(path)
        feeds = random_feeds(model)
        expected = session(model).run(None, feeds)
        names = [o.name for o in model.graph.output]
        with running_agents(*NODES) as agents:
            infra = infra_for(agents)
            deployment = build_deployment(path, assignment, infra)
            with connect(deployment, infra, timeout_s=DEADLINE_S) as s:
                for _ in range(50):
                    s.infer(feeds)  # warm-up before the RSS baseline
                rss_start = {n: rss_mib(a.process.pid) for n, a in agents.items()}
                client_start = rss_mib(os.getpid())
                chaos = Chaos(agents, seed, steady)
                outcomes: list[tuple[float, float, str]] = []  # (started, ended, outcome)
                wrong = unnamed = 0
                started = time.monotonic()
                chaos.start()
                try:
                    for result in s.stream(
                        (feeds for _ in range(requests)), max_in_flight=in_flight
                    ):
                        ended = time.monotonic()
                        begun = ended - result.record.latency_s
                        if result.record.latency_s > DEADLINE_S + HANG_GRACE_S:
                            outcome = "hung"
                        elif result.error is None:
                            outcome = "ok"
                            if any(not np.allclose(result.outputs[n], e, atol=1e-4)
                                   for n, e in zip(names, expected, strict=True)):  # fmt: skip
                                wrong += 1
                        else:
                            outcome = "failed"
                            if result.error.peer not in NODES:
                                unnamed += 1
                        outcomes.append((begun, ended, outcome))
                finally:
                    chaos.stop()
                wall_s = time.monotonic() - started
                s.health()  # every agent back and answering
                rss_end = {n: rss_mib(a.process.pid) for n, a in chaos.agents.items()}
                client_end = rss_mib(os.getpid())
            for agent in chaos.agents.values():
                if agent.process is not agents[agent.name].process:
                    stop(agent.process)
    recoveries = []
    for fault in chaos.faults:
        after = [e for b, e, o in outcomes if o == "ok" and b >= fault["end"]]
        if after:
            recoveries.append(min(after) - fault["end"])
    counts = {k: sum(1 for *_, o in outcomes if o == k) for k in ("ok", "failed", "hung")}
    stable = [n for n in NODES if n not in chaos.restarted]
    return {
        "requests": len(outcomes),
        **counts,
        "wrong_outputs": wrong,
        "failed_without_node": unnamed,
        "wall_s": wall_s,
        "in_flight": in_flight,
        "deadline_s": DEADLINE_S,
        "faults": {
            "kill_restart": sum(f["kind"] == "kill" for f in chaos.faults),
            "sigstop": sum(f["kind"] == "stop" for f in chaos.faults),
            "frozen_s": [round(f["frozen_s"], 1) for f in chaos.faults if f["kind"] == "stop"],
        },
        "recovery_s": {
            "median": statistics.median(recoveries) if recoveries else None,
            "max": max(recoveries, default=None),
            "n": len(recoveries),
        },
        "rss_mib": {
            "client": [client_start, client_end],
            "agents_never_restarted": {n: [rss_start[n], rss_end[n]] for n in stable},
            "agents_peak": chaos.peak_rss,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--steady", default="a", help="node never killed, only frozen ('' for none)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = soak(args.requests, args.in_flight, args.seed, args.steady or None)
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
