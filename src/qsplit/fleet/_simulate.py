"""Discrete-event simulation of a fleet plan, and its projection to many devices.

The simulation runs exactly the system the queueing approximation (:mod:`._queueing`) describes,
without its approximations: every device is its own FIFO server (its part of the plan), sending
Poisson requests; a request for a shared component joins its node's one batcher for that
component, which closes a batch at the node's batch size or the time-out after the batch
opened, whichever comes first; the node serves the closed batches of all its components FIFO
on its replicas (as the served node does: docs/serve.md); a request visits the
shared nodes of its plan in the plan's order. Transfers are the plan's fixed times (links are
not queues, as in the model). A node's servers are its planned replicas, or, autoscaled, move
between a minimum and those replicas as Serve's autoscaler would move its workers
(:mod:`qsplit.fleet._autoscale`): what the model does not price.
An event heap in plain Python is fast enough (tens of thousands of requests per second of
CPU) and keeps batching and replicas simple to state; ``simpy`` would add a dependency for
nothing this needs.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qsplit.errors import InputError
from qsplit.fleet._autoscale import AutoscalePolicy, Decision, decide
from qsplit.fleet._model import Choice, FleetProblem, Outcome, Work, assess, utilisation
from qsplit.fleet._queueing import SATURATED

WARMUP = 0.1
"""Fraction of the simulated time at the start whose requests are not counted."""


@dataclass(frozen=True)
class Simulated:
    """Latencies measured in a simulation run."""

    requests: int
    """Requests counted (after the warm-up, completed)."""
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    per_class: dict[str, tuple[float, float, float]]
    """Class → (mean, p50, p95) in seconds."""
    utilisation: dict[str, float]
    """Shared node → busy replica-seconds / (planned replicas × simulated time)."""
    servers: dict[str, tuple[float, int, int]]
    """Shared node → its servers after the warm-up: (time-weighted mean, fewest, most); the
    planned replicas throughout unless autoscaled."""
    window_p95_s: tuple[float, ...] = ()
    """With ``window_s``: the p95 of the requests sent in each window of that length after the
    warm-up (those with any): what runs of that length would measure, one each."""

    def window_band(self) -> tuple[float, ...]:
        """The 10, 50 and 90 % quantiles of :attr:`window_p95_s` (empty without windows)."""
        if not self.window_p95_s:
            return ()
        return tuple(float(q) for q in np.quantile(self.window_p95_s, [0.1, 0.5, 0.9]))


def simulate(
    problem: FleetProblem,
    choice: Choice,
    *,
    requests: int = 20_000,
    seed: int = 0,
    autoscale: AutoscalePolicy | Mapping[str, AutoscalePolicy] | None = None,
    window_s: float | None = None,
) -> Simulated:
    """Simulate about ``requests`` requests of the fleet running ``choice``; ``autoscale``
    moves the servers of every shared node (or of the nodes it maps) between the policy's
    minimum and the node's planned replicas as Serve's autoscaler would
    (:mod:`qsplit.fleet._autoscale`); ``window_s`` adds the p95 of each window of that length
    (a measured run is one window: with an autoscaler, its p95 varies from one to the next)."""
    policies = _policies(problem, autoscale)
    if window_s is not None and not window_s > 0:
        raise InputError(f"window_s is {window_s}", field="window_s", fix="give more than 0 s")
    rng = np.random.default_rng(seed)
    fleet = problem.fleet
    horizon = requests / problem.total_rate_hz
    arrivals: list[tuple[float, int, float]] = []  # (leaves the device, class, arrival)
    names = [c.name for c in fleet.classes]
    for ci, c in enumerate(fleet.classes):
        cand = choice.of(problem, c.name)
        for _ in range(c.count):
            gaps = rng.exponential(1 / c.rate_hz, int(c.rate_hz * horizon * 1.3) + 10)
            times = np.cumsum(gaps)
            free = 0.0
            for t in times[times < horizon]:
                free = max(free, t) + cand.device_busy_s
                arrivals.append((free, ci, float(t)))
    return _run(problem, choice, names, arrivals, horizon, policies, window_s)


def _policies(
    problem: FleetProblem, autoscale: AutoscalePolicy | Mapping[str, AutoscalePolicy] | None
) -> dict[str, AutoscalePolicy]:
    """Shared node → its autoscaling policy, each checked against the node's replicas."""
    fleet = problem.fleet
    if autoscale is None:
        return {}
    if isinstance(autoscale, AutoscalePolicy):
        autoscale = dict.fromkeys(fleet.shared_names, autoscale)
    unknown = sorted(set(autoscale) - set(fleet.shared_names))
    if unknown:
        raise InputError(
            f"autoscaled nodes {', '.join(unknown)} are not shared nodes of the fleet",
            field="autoscale",
            fix=f"name shared nodes: {', '.join(fleet.shared_names)}",
        )
    for node, policy in autoscale.items():
        policy.check(node, fleet.replicas(node))
    return dict(autoscale)


class _Servers:
    """One shared node's servers: serving (some busy, some of those being removed once their
    batch is done) and starting. Without a policy, the planned replicas throughout."""

    def __init__(self, replicas: int, policy: AutoscalePolicy | None) -> None:
        self.replicas = replicas
        self.policy = policy
        self.running = policy.min_replicas if policy else replicas
        self.busy = 0
        self.retiring = 0
        self.starting: set[int] = set()
        """The numbers of the servers starting."""
        self.decision = Decision(self.running)
        self.samples: deque[tuple[float, int]] = deque()
        self.history = [(0.0, self.running)]
        """(time, servers) at each change."""

    @property
    def free(self) -> int:
        return self.running - self.busy

    def record(self, now: float, ongoing: int) -> None:
        """One sample of the ongoing batches, those older than the look-back dropped."""
        assert self.policy is not None
        self.samples.append((now, ongoing))
        while self.samples[0][0] <= now - self.policy.look_back_period_s:
            self.samples.popleft()

    def decide(self, now: float) -> int:
        """Serve's decision now; the change in servers it asks for (+: start, −: remove)."""
        assert self.policy is not None
        ongoing = sum(v for _, v in self.samples) / len(self.samples) if self.samples else 0.0
        self.decision = decide(
            self.policy,
            self.decision,
            now_s=now,
            ongoing=ongoing,
            running=self.running - self.retiring,
            max_replicas=self.replicas,
        )
        return self.decision.target - (self.running - self.retiring + len(self.starting))

    def remove(self, now: float, count: int) -> None:
        """Remove ``count`` servers: starting ones first (the latest), then idle ones, then
        busy ones once their batch is done."""
        for number in sorted(self.starting, reverse=True)[:count]:
            self.starting.remove(number)
            count -= 1
        idle = min(count, self.running - self.busy)
        self.change(now, -idle)
        self.retiring += count - idle

    def finish(self, now: float) -> bool:
        """A batch is done; whether its server stays (to take the next)."""
        self.busy -= 1
        if self.retiring:
            self.retiring -= 1
            self.change(now, -1)
            return False
        return True

    def change(self, now: float, delta: int) -> None:
        if delta:
            self.running += delta
            self.history.append((now, self.running))

    def summary(self, start: float, end: float) -> tuple[float, int, int]:
        """(time-weighted mean, fewest, most) servers from ``start`` to ``end``."""
        area, seen = 0.0, []
        ends = [*(t for t, _ in self.history[1:]), end]
        for (t, n), t_next in zip(self.history, ends, strict=True):
            a, b = max(t, start), min(t_next, end)
            if b > a:
                area += (b - a) * n
                seen.append(n)
        return (float(area / (end - start)), min(seen), max(seen))


_STAGE, _FINISH, _TIMEOUT, _READY, _RECORD, _DECIDE = range(6)


def _run(
    problem: FleetProblem,
    choice: Choice,
    names: list[str],
    arrivals: list[tuple[float, int, float]],
    horizon: float,
    policies: Mapping[str, AutoscalePolicy],
    window_s: float | None,
) -> Simulated:
    fleet = problem.fleet
    cands = [choice.of(problem, n) for n in names]
    fixed = [k.latency_s - k.device_busy_s - sum(w.batch_s(1) for w in k.work) for k in cands]
    batch = dict(choice.batch)
    nodes = {k: _Servers(fleet.replicas(k), policies.get(k)) for k in fleet.shared_names}
    busy = dict.fromkeys(fleet.shared_names, 0.0)
    # (node, blocks) → the open batch's number and members
    forming: dict[tuple[str, tuple[str, ...]], tuple[int, list[int]]] = {}
    opened = 0
    starts = 0
    waiting: dict[str, deque[tuple[float, list[int]]]] = {k: deque() for k in fleet.shared_names}
    req_class: list[int] = []
    req_start: list[float] = []
    req_stage: list[int] = []
    done: list[tuple[int, float]] = []
    events: list[tuple[float, int, int, object]] = []  # (time, seq, kind, payload)
    seq = 0
    for ready, ci, start in arrivals:
        req_class.append(ci)
        req_start.append(start)
        req_stage.append(0)
        events.append((ready, seq, _STAGE, len(req_class) - 1))
        seq += 1
    for node, policy in policies.items():
        events.append((policy.record_interval_s, seq, _RECORD, node))
        events.append((policy.metrics_interval_s, seq + 1, _DECIDE, node))
        seq += 2
    heapq.heapify(events)

    def push(time: float, kind: int, payload: object) -> None:
        nonlocal seq
        heapq.heappush(events, (time, seq, kind, payload))
        seq += 1

    def start_batch(now: float, node: str, duration: float, members: list[int]) -> None:
        nodes[node].busy += 1
        busy[node] += duration
        push(now + duration, _FINISH, (node, members))

    def close(now: float, key: tuple[str, tuple[str, ...]], work: Work) -> None:
        _, members = forming.pop(key)
        duration = work.batch_s(len(members))
        if nodes[work.node].free > 0:
            start_batch(now, work.node, duration, members)
        else:
            waiting[work.node].append((duration, members))

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == _STAGE:  # a request reaches its next stage
            r = payload
            assert isinstance(r, int)
            work = cands[req_class[r]].work
            stage = req_stage[r]
            if stage == len(work):
                done.append((r, now + fixed[req_class[r]]))
                continue
            w = work[stage]
            key = w.key
            if key not in forming:
                opened += 1
                forming[key] = (opened, [])
                if batch[w.node] > 1 and math.isfinite(problem.batch_wait_s):
                    push(now + problem.batch_wait_s, _TIMEOUT, (key, opened, w))
            forming[key][1].append(r)
            if len(forming[key][1]) == batch[w.node]:
                close(now, key, w)
        elif kind == _TIMEOUT:  # a batch's time-out
            key, number, w = payload  # type: ignore[misc]
            if key in forming and forming[key][0] == number:
                close(now, key, w)
        elif kind == _FINISH:  # a batch finishes on a server
            node, members = payload  # type: ignore[misc]
            if nodes[node].finish(now) and waiting[node]:
                start_batch(now, node, *waiting[node].popleft())
            for r in members:
                req_stage[r] += 1
                push(now, _STAGE, r)
        elif kind == _READY:  # a started server serves
            node, number = payload  # type: ignore[misc]
            servers = nodes[node]
            if number in servers.starting:  # not cancelled meanwhile
                servers.starting.remove(number)
                servers.change(now, 1)
                if waiting[node]:
                    start_batch(now, node, *waiting[node].popleft())
        elif len(done) < len(arrivals):  # the autoscaler's ticks, while requests remain
            node = payload
            assert isinstance(node, str)
            servers = nodes[node]
            policy = policies[node]
            if kind == _RECORD:
                ongoing = min(servers.busy + len(waiting[node]), servers.replicas)
                servers.record(now, ongoing)
                push(now + policy.record_interval_s, _RECORD, node)
            else:
                delta = servers.decide(now)
                for _ in range(delta):
                    starts += 1
                    servers.starting.add(starts)
                    push(now + policy.replica_start_s, _READY, (node, starts))
                if delta < 0:
                    servers.remove(now, -delta)
                push(now + policy.metrics_interval_s, _DECIDE, node)
    servers = {k: n.summary(WARMUP * horizon, horizon) for k, n in nodes.items()}
    simulated = _summarise(problem, names, req_class, req_start, done, busy, horizon, servers)
    if window_s is None:
        return simulated
    return replace(simulated, window_p95_s=_window_p95(req_start, done, horizon, window_s))


def _window_p95(
    req_start: list[float], done: list[tuple[int, float]], horizon: float, window_s: float
) -> tuple[float, ...]:
    """The p95 of the requests sent in each ``window_s`` from the warm-up's end on."""
    start = np.array([req_start[r] for r, _ in done])
    latency = np.array([finish - req_start[r] for r, finish in done])
    result = []
    for opens in np.arange(WARMUP * horizon, horizon - window_s + 1e-9, window_s):
        inside = latency[(start >= opens) & (start < opens + window_s)]
        if inside.size:
            result.append(float(np.quantile(inside, 0.95)))
    return tuple(result)


def _summarise(
    problem: FleetProblem,
    names: list[str],
    req_class: list[int],
    req_start: list[float],
    done: list[tuple[int, float]],
    busy: dict[str, float],
    horizon: float,
    servers: dict[str, tuple[float, int, int]],
) -> Simulated:
    latency = [[] for _ in names]  # type: list[list[float]]
    for r, finish in done:
        if req_start[r] >= WARMUP * horizon:
            latency[req_class[r]].append(finish - req_start[r])
    every = np.concatenate([np.array(x) for x in latency]) if done else np.array([math.nan])
    per_class = {n: _stats(np.array(x)) for n, x in zip(names, latency, strict=True) if len(x)}
    mean, p50, p95 = _stats(every)
    fleet = problem.fleet
    return Simulated(
        requests=int(every.size),
        latency_mean_s=mean,
        latency_p50_s=p50,
        latency_p95_s=p95,
        per_class=per_class,
        utilisation={k: busy[k] / (fleet.replicas(k) * horizon) for k in fleet.shared_names},
        servers=servers,
    )


def _stats(values: np.ndarray) -> tuple[float, float, float]:
    if values.size == 0:
        return (math.nan, math.nan, math.nan)
    return (float(values.mean()), float(np.quantile(values, 0.5)), float(np.quantile(values, 0.95)))


@dataclass(frozen=True)
class ProjectionPoint:
    """The fleet plan at one device count."""

    devices: int
    utilisation: dict[str, float]
    predicted: Outcome
    simulated: Simulated | None
    """``None`` where a shared node is saturated (ρ ≥ 1): no steady state to measure."""


@dataclass(frozen=True)
class Projection:
    """A fleet plan held fixed while the number of devices grows."""

    points: tuple[ProjectionPoint, ...]
    saturation: dict[str, float]
    """Shared node → the device count at which its utilisation reaches 1 (``inf``: unused)."""
    bound: dict[str, float]
    """Shared node → the device count at which it reaches the utilisation bound."""


def project(
    problem: FleetProblem,
    choice: Choice,
    counts: Sequence[int],
    *,
    requests: int = 20_000,
    seed: int = 0,
) -> Projection:
    """Hold ``choice`` and scale the fleet to each of ``counts`` devices (the classes keep their
    shares): utilisation, predicted and simulated p50/p95 per count, and where each shared node
    saturates. Utilisation grows linearly with the count, so saturation is exact."""
    points = []
    for i, n in enumerate(counts):
        scaled = replace(problem, fleet=problem.fleet.scaled(n))
        rho = utilisation(scaled, choice)
        stable = all(r < SATURATED for r in rho.values())
        simulated = simulate(scaled, choice, requests=requests, seed=seed + i) if stable else None
        points.append(ProjectionPoint(n, rho, assess(scaled, choice), simulated))
    return Projection(
        tuple(points),
        _reaching(problem, choice, 1.0),
        _reaching(problem, choice, problem.utilisation_max),
    )


def _reaching(problem: FleetProblem, choice: Choice, level: float) -> dict[str, float]:
    """Shared node → the device count at which its utilisation reaches ``level``.

    Utilisation grows with the count, linearly for full batches; batches that close at the
    time-out fill more as requests grow, so it is found by bisection on the scaled fleet."""

    fleet = problem.fleet

    def rho(count: float, node: str) -> float:
        """At ``count`` devices, the classes in proportion: a node's load depends on the
        classes' summed rates only, so scaling every rate alike is that fleet, fractions
        included."""
        factor = count / fleet.device_count
        classes = tuple(replace(c, rate_hz=c.rate_hz * factor) for c in fleet.classes)
        return utilisation(replace(problem, fleet=replace(fleet, classes=classes)), choice)[node]

    result = {}
    for node in fleet.shared_names:
        high = float(fleet.device_count)
        if rho(high, node) <= 0:
            result[node] = math.inf
            continue
        while rho(high, node) < level:
            high *= 2
        low = 0.0
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (mid, high) if rho(mid, node) < level else (low, mid)
        result[node] = high
    return result


def plot_projection(projection: Projection, path: str | Path, bound: float) -> Path:
    """Utilisation per shared node, and predicted vs simulated p50/p95, against device count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    counts = [p.devices for p in projection.points]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for node in projection.saturation:
        top.plot(counts, [p.utilisation[node] for p in projection.points], marker="o", label=node)
    top.axhline(bound, color="grey", linestyle="--", label=f"bound {bound:g}")
    top.axhline(1.0, color="red", linestyle=":", label="saturation")
    top.set_ylabel("utilisation ρ")
    top.legend()
    for q, style in (("p50", "-"), ("p95", "--")):
        predicted = [getattr(p.predicted, f"latency_{q}_s") * 1e3 for p in projection.points]
        bottom.plot(counts, predicted, style, color="C0", label=f"{q} predicted")
        sim = [
            (p.devices, getattr(p.simulated, f"latency_{q}_s") * 1e3)
            for p in projection.points
            if p.simulated is not None
        ]
        if sim:
            bottom.plot(
                *zip(*sim, strict=True),
                "o",
                color="C1" if q == "p50" else "C3",
                label=f"{q} simulated",
            )
    bottom.set_xlabel("devices")
    bottom.set_ylabel("latency (ms)")
    bottom.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
