"""The strategies of the adaptive scenario, each a stream of requests sent one at a time for a
fixed time while the schedule plays on the testbed.

* ``static``: the plan made for the nominal links, whatever happens.
* ``table``: a QPART-style per-bandwidth table (:func:`qsplit.plan.bandwidth_table`), every one
  of its plans deployed ahead; before each request the uplink is probed (a 1-byte and a 256 kB
  round trip over the testbed's probe entrance of the link, whose difference is the rate
  whatever the latency) and the request goes to the plan the table gives for that rate. The
  probe gives the table the best bandwidth estimate it could have; what it lacks is anything
  but bandwidth.
* ``adaptive``: qsplit's :func:`qsplit.adapt.run_adaptive` from the nominal plan: live
  estimates, warm re-planning, switches between requests and failover.

The schedule starts when the first measured request is about to leave (after every deploy and
warm-up), so the three strategies see the same changes at the same times of their streams.
After each stream the testbed is put back as its infrastructure file describes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qsplit.adapt import AdaptPolicy, Candidate, run_adaptive
from qsplit.errors import QsplitError
from qsplit.infra import Infra
from qsplit.plan import BandwidthTable, Plan, PlanningProblem, plan_key
from qsplit.profile import Request
from qsplit.report import Timeline, TimelinePoint
from qsplit.runtime import Session, build_deployment, connect
from qsplit.testbed import PlayedEvent, Schedule, Testbed, play, probe_request

Feeds = Mapping[str, np.ndarray]

FAILED_PAUSE_S = 0.5
"""Least time between a request that failed and the next: a dead node fails requests at once,
and a strategy without failover would otherwise send thousands."""
PROBE_BYTES = 256_000
"""26 ms at 10 MB/s: long enough that the wake-ups of a loaded host (milliseconds) do not read
as a link twice as fast (64 kB did, at load 10)."""
PROBE_SLACK = 1.1
"""A probe reads the link up to ~10 % slow (the proxies' and the probe's own wake-ups): without
this slack a link exactly at a grid rate flips between that point's plan and the one below."""


@dataclass(frozen=True)
class Stream:
    """What every strategy's stream shares."""

    testbed: Testbed
    nominal: Infra
    """The testbed's infrastructure as its file describes it (restored after each stream)."""
    problem: PlanningProblem
    model: Path
    feeds: Sequence[Feeds]
    schedule: Schedule
    duration_s: float
    timeout_s: float


@dataclass(frozen=True)
class StreamRun:
    """One strategy's stream: its requests, the schedule as played beside it, and (qsplit
    adaptive only) the decisions it logged, with the costs behind them."""

    timeline: Timeline
    played: tuple[PlayedEvent, ...]
    decisions: tuple[dict[str, Any], ...] = ()


class _Clock:
    """Plays the schedule from the first request on, in a thread beside the stream."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._stop = threading.Event()
        self._played: list[PlayedEvent] = []
        self._thread: threading.Thread | None = None
        self.start = 0.0

    def requests(self) -> Iterator[Feeds]:
        """The stream's inputs, cycling, until its duration has passed."""
        self.start = time.time()
        self._thread = threading.Thread(target=self._play, daemon=True)
        self._thread.start()
        sent = 0
        while time.time() - self.start < self._stream.duration_s:
            yield self._stream.feeds[sent % len(self._stream.feeds)]
            sent += 1

    def _play(self) -> None:
        self._played.extend(
            play(self._stream.testbed, self._stream.schedule, start=self.start, stop=self._stop)
        )

    def finish(self) -> tuple[PlayedEvent, ...]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return tuple(self._played)


def plan_label(assignment: Mapping[str, str], nodes: Sequence[str]) -> str:
    """A plan as the blocks each node runs, e.g. ``device 4 + cloud 30``."""
    counts = {n: sum(v == n for v in assignment.values()) for n in nodes}
    return " + ".join(f"{n} {c}" for n, c in counts.items() if c)


def run_static(stream: Stream, chosen: Plan) -> StreamRun:
    label = plan_label(chosen.assignment, stream.nominal.node_names)
    with ExitStack() as stack:
        session = _deployed(stream, chosen, stack)
        clock = _Clock(stream)
        points = [_request(session, feeds, clock, label, stream) for feeds in clock.requests()]
        played = clock.finish()
        restore(stream.testbed, stream.nominal)
    return StreamRun(Timeline("static", tuple(points)), played)


def run_table(stream: Stream, table: BandwidthTable) -> StreamRun:
    nodes = stream.nominal.node_names
    plans = table.distinct()
    probe = stream.testbed.state.link(*table.links[0])
    assert probe is not None  # bandwidth_table checked the link exists
    with ExitStack() as stack:
        sessions = {key: _deployed(stream, chosen, stack) for key, chosen in plans.items()}
        request = stack.enter_context(probe_request(probe.probe))
        clock = _Clock(stream)
        points, switches, current = [], [], None
        for feeds in clock.requests():
            chosen = table.select(_probed_rate(request) * PROBE_SLACK)
            key, label = plan_key(chosen), plan_label(chosen.assignment, nodes)
            if key != current:
                if current is not None:
                    switches.append((time.time() - clock.start, label))
                current = key
            points.append(_request(sessions[key], feeds, clock, label, stream))
        played = clock.finish()
        restore(stream.testbed, stream.nominal)
    return StreamRun(Timeline("table", tuple(points), tuple(switches)), played)


def run_adaptive_stream(stream: Stream, chosen: Plan, policy: AdaptPolicy) -> StreamRun:
    clock = _Clock(stream)
    try:
        run = run_adaptive(
            stream.problem,
            Candidate(chosen.assignment, chosen.quantized),
            stream.model,
            clock.requests(),
            infra=stream.testbed.infra(),
            policy=policy,
            timeout_s=stream.timeout_s,
        )
    finally:
        played = clock.finish()
        restore(stream.testbed, stream.nominal)
    nodes = stream.nominal.node_names
    labels = {pid: plan_label(c.assignment, nodes) for pid, c in run.plans.items()}
    points = tuple(
        TimelinePoint(
            run.started_at + r.at_s - clock.start,
            r.latency_s,
            labels[r.plan_id],
            r.error is not None,
        )
        for r in run.requests
    )
    switches = tuple(
        (d.at - clock.start, labels.get(d.to_plan or "", str(d.to_plan))) for d in run.switches
    )
    decisions = tuple(
        {**d.to_dict(), "at_s": d.at - clock.start, "to_plan": labels.get(d.to_plan or "")}
        for d in run.decisions
    )
    return StreamRun(Timeline("adaptive", points, switches), played, decisions)


def restore(testbed: Testbed, nominal: Infra) -> None:
    """Put the testbed back as ``nominal`` describes it: every link's shape, every node's
    speed, every killed node restarted."""
    state = testbed.refresh()
    for name, agent in state.agents.items():
        if agent.killed:
            testbed.restart_node(name)
        if agent.speed_factor != 1.0:
            testbed.set_node_speed(name, 1.0)
    for link in state.links:
        want = nominal.link(link.source, link.target)
        if (link.bandwidth_bytes_per_s, link.latency_s) != (
            want.bandwidth_bytes_per_s,
            want.latency_s,
        ):
            testbed.set_link(
                link.source,
                link.target,
                bandwidth_bytes_per_s=want.bandwidth_bytes_per_s,
                latency_s=want.latency_s,
            )


def _deployed(stream: Stream, chosen: Plan, stack: ExitStack) -> Session:
    """``chosen`` deployed on the testbed with the nodes' profiles, and warmed up."""
    infra = stream.testbed.infra()
    deployment = build_deployment(
        stream.model,
        chosen.assignment,
        infra,
        quantized=chosen.quantized,
        profiles=stream.problem.profiles,
    )
    session = stack.enter_context(connect(deployment, infra))
    session.infer(stream.feeds[0], timeout_s=stream.timeout_s)
    return session


def _request(
    session: Session, feeds: Feeds, clock: _Clock, label: str, stream: Stream
) -> TimelinePoint:
    sent = time.time()
    try:
        _, record = session.infer_timed(feeds, timeout_s=stream.timeout_s)
    except QsplitError as exc:
        failed = time.time() - sent
        time.sleep(max(0.0, FAILED_PAUSE_S - failed))
        return TimelinePoint(sent - clock.start, failed, label, lost=True, error=str(exc))
    return TimelinePoint(sent - clock.start, record.latency_s, label)


def _probed_rate(request: Request) -> float:
    """The uplink's rate now: the extra time of a :data:`PROBE_BYTES` round trip over a
    1-byte one (the latency cancels)."""
    times = []
    for size in (1, PROBE_BYTES):
        start = time.perf_counter()
        request(b"x" * size)
        times.append(time.perf_counter() - start)
    return (PROBE_BYTES - 1) / max(times[1] - times[0], 1e-6)
