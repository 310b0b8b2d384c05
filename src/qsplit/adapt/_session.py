"""A stream of requests that follows the observed costs: re-plans, switches plans between
requests and fails over when a node stops answering.

One :class:`qsplit.runtime.Session` per plan in use, all feeding one
:class:`qsplit.runtime.Observer`. A background thread re-plans every ``check_interval_s``
under the observed costs; a plan that pays is deployed ahead of time next to the running one
(its own session), then new requests go to it, and the old plan's components are undeployed
once the requests on them have drained. A request is submitted to exactly one session at a
time and yielded exactly once; only a request that failed because a node stopped answering is
submitted again, to a plan without that node.

*Hedging.* After a switch, a request still in flight on the plan switched away from is also
sent to the new plan when it is *late* — it has taken :data:`LATE_FACTOR` (1.5) × the latency
its plan was predicted to take when it was sent — and the new plan is predicted faster than
its own under the costs that made the switch. Lateness is the point: a late request is
typically the one whose wait bounded a link (docs/adapt.md, *In-flight evidence*), and the
prediction of its remaining time under that bound is only a lower bound. The first successful
answer is the request's; the other is discarded when it comes, so the caller sees each request
once.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsplit.adapt._policy import AdaptPolicy, Decision, DecisionKind
from qsplit.adapt._replan import (
    Candidate,
    Verdict,
    device_only,
    observed_problem,
    price,
    relative_cost,
    replan,
)
from qsplit.infra import Infra
from qsplit.model import Preprocess
from qsplit.plan import PlanningProblem, WarmModel
from qsplit.runtime import (
    Deployment,
    InferResult,
    Observed,
    Observer,
    PeerDisconnected,
    PeerTimeout,
    Session,
    build_deployment,
    connect,
    curve_keys,
    health_of,
    log_event,
)
from qsplit.runtime.errors import TransportError

HEALTH_TIMEOUT_S = 0.5
"""How long a down node's health probe waits for an answer."""
CHANGE_WAIT_S = 2.0
"""Longest a new request waits for the check a detected change woke (a re-plan takes ~0.1 s;
a deploy may take longer, and then the request goes to the plan current by then)."""
EMBARGO_MAX_S = 300.0
"""Longest a plan left by a failover is kept from being gone back to."""
LATE_FACTOR = 1.5
"""A request is late, and may be hedged after a switch, once it has taken this × its plan's
predicted latency: on a loaded host requests run 20–40 % over their prediction, and a copy of
each of those on the new plan only delays the next request behind it (BENCHMARKS.md)."""
DEPLOY_RETRY_S = 10.0
"""How long a plan whose deployment failed is not tried again (each try may take a deploy
timeout, during which the loop does not check)."""


@dataclass(frozen=True)
class AdaptResult:
    """One request of an adaptive stream."""

    index: int
    result: InferResult
    """The last attempt's result (outputs, record, or the error that ended it)."""
    plan_id: str
    """The plan that answered (or failed) last."""
    submitted_at: float
    """``time.time()`` the request was first submitted."""
    attempts: int
    latency_s: float
    """From the first submission to the last attempt's answer (failovers included)."""
    hedged: bool = False
    """The request was also sent to a newer plan while in flight (see the module docstring)."""


@dataclass
class _Running:
    """A plan in use: its candidate, session and requests in flight."""

    candidate: Candidate
    plan_id: str
    session: Session
    in_flight: int = 0
    predicted_s: float | None = None
    """Its latency under the costs observed when it was last switched to or from (the
    nominal costs until then)."""


@dataclass
class _Request:
    index: int
    feeds: Mapping[str, np.ndarray]
    submitted_at: float
    running: _Running
    future: concurrent.futures.Future[InferResult]
    attempted_at: float
    attempts: int = 1
    expected_s: float | None = None
    """Its plan's predicted latency when it was sent: beyond it, the request is late."""
    hedge: _Hedge | None = None


@dataclass
class _Hedge:
    """The same request sent to a newer plan while the first try was still in flight."""

    running: _Running
    future: concurrent.futures.Future[InferResult]
    attempted_at: float


@dataclass
class _State:
    """What the stream and the re-planning thread share (under :attr:`AdaptiveSession._lock`)."""

    current: _Running
    fallback: _Running
    plans: dict[tuple, _Running] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    left: tuple | None = None
    """The plan last switched away from (hysteresis applies to going back to it)."""
    last_switch: float = 0.0
    held: tuple | None = None
    """The plan last held back by ``min_interval_s`` (logged once, not at every check)."""
    embargo: dict[tuple, tuple[float, int]] = field(default_factory=dict)
    """Plans left by a failover: until when they are not gone back to, and how many times."""


class AdaptiveSession:
    """Run requests on the best plan under observed costs (``with`` closes it).

    ``problem`` is the planning problem the ``start`` plan was made for (nominal links and
    profiles); ``infra`` (default ``problem.infra``) gives the agents' addresses. The device-only
    plan is deployed too, as the fallback that needs no other node.
    """

    def __init__(
        self,
        problem: PlanningProblem,
        start: Candidate,
        model: str | Path,
        *,
        infra: Infra | None = None,
        policy: AdaptPolicy | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
        graph_optimization: str = "all",
        curve_key: str | Path | None = None,
        calibration: object = None,
        preprocess: Preprocess | None = None,
    ) -> None:
        self.problem = problem
        self.policy = policy or AdaptPolicy()
        self.infra = infra or problem.infra
        self.observer = Observer(self.infra.links, on_change=self._changed)
        self.decisions: list[Decision] = []
        self.plans: dict[str, Candidate] = {}
        """Every plan this session ran or deployed, by plan id."""
        self._model = Path(model)
        self._token = token
        self._connect = {
            "token": token,
            "timeout_s": timeout_s,
            "graph_optimization": graph_optimization,
            "curve_key": curve_key,
        }
        self._curve = (
            None if curve_key is None else curve_keys(self.infra, curve_key, node=self.infra.device)
        )
        self._calibration = calibration
        self._preprocess = preprocess
        self._lock = threading.Lock()
        self._decided = threading.Condition(self._lock)
        self._changes = 0
        """Changes the observer detected; new requests wait until a check has seen them all."""
        self._checked = 0
        self._failed: dict[tuple, float] = {}
        """Plans whose deployment failed, by key: when."""
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._warm: WarmModel | None = None
        first = self._open(start)
        try:
            fallback = (
                first if start.key == device_only(problem).key else self._open(device_only(problem))
            )
        except BaseException:
            first.session.close()
            raise
        self._state = _State(current=first, fallback=fallback)
        self._state.plans = {start.key: first, fallback.candidate.key: fallback}
        threading.Thread(target=self._build_warm, daemon=True).start()
        self._thread = threading.Thread(target=self._adapt_loop, daemon=True)
        self._thread.start()

    # -- public --------------------------------------------------------------------------

    @property
    def plan_id(self) -> str:
        """The plan new requests go to."""
        with self._lock:
            return self._state.current.plan_id

    @property
    def deployment(self) -> Deployment:
        """The deployment new requests go to (its ``input_specs`` are every plan's)."""
        with self._lock:
            return self._state.current.session.deployment

    @property
    def candidate(self) -> Candidate:
        with self._lock:
            return self._state.current.candidate

    def observed(self) -> Observed:
        return self.observer.snapshot()

    def stream(
        self,
        feeds: Iterable[Mapping[str, np.ndarray]],
        *,
        max_in_flight: int = 1,
        timeout_s: float | None = None,
    ) -> Iterator[AdaptResult]:
        """Requests in input order, each yielded once, at most ``max_in_flight`` at once."""
        window: deque[_Request] = deque()
        for index, one in enumerate(feeds):
            window.append(self._submit(index, one, time.time(), timeout_s))
            while len(window) >= max_in_flight:
                yield self._settle(window, timeout_s)
        while window:
            yield self._settle(window, timeout_s)

    def close(self) -> None:
        """Stop re-planning and close every session (the deployed components stay)."""
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=self.policy.solve_time_limit_s + 30)
        with self._lock:
            sessions = [r.session for r in self._state.plans.values()]
        for session in sessions:
            session.close()

    def __enter__(self) -> AdaptiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the stream ----------------------------------------------------------------------

    def _submit(
        self,
        index: int,
        feeds: Mapping[str, np.ndarray],
        submitted_at: float,
        timeout_s: float | None,
        attempts: int = 1,
    ) -> _Request:
        with self._decided:
            # A link or node just changed: the check it woke decides where this request goes.
            self._decided.wait_for(lambda: self._checked >= self._changes, CHANGE_WAIT_S)
            running = self._state.current
            running.in_flight += 1
        attempted_at = time.time()
        future = running.session.submit(index, feeds, timeout_s=timeout_s)
        return _Request(
            index,
            feeds,
            submitted_at,
            running,
            future,
            attempted_at,
            attempts,
            expected_s=running.predicted_s,
        )

    def _settle(self, window: deque[_Request], timeout_s: float | None) -> AdaptResult:
        """Wait for the oldest request, sending every request that failed for a node that
        stopped answering again on a plan without it, and hedging those a switch left on a
        slower plan; return the oldest one's result."""
        while True:
            for i, request in enumerate(window):
                hedge = request.hedge
                if hedge is not None and request.future.done() and _failed(hedge.future):
                    # Both tries failed: the first one's failure decides (retried or reported).
                    self._finished(hedge.running)
                    request.hedge = None
                if request.hedge is None and request.future.done() and self._retry(request):
                    window[i] = self._resubmit(request, timeout_s)
                elif request.hedge is None and not request.future.done():
                    self._maybe_hedge(request, timeout_s)
            head = window[0]
            answered = _answered(head)
            if answered is not None:
                window.popleft()
                return self._result(head, *answered)
            futures = [r.future for r in window]
            futures += [r.hedge.future for r in window if r.hedge is not None]
            concurrent.futures.wait(
                futures,
                timeout=self.policy.check_interval_s,
                return_when=concurrent.futures.FIRST_COMPLETED,
            )

    def _maybe_hedge(self, request: _Request, timeout_s: float | None) -> None:
        """Send ``request`` to the current plan too, when a switch moved new requests there,
        the request is late and the current plan is predicted faster than its own."""
        with self._lock:
            current, own = self._state.current, request.running
            if (
                current is own
                or current.predicted_s is None
                or own.predicted_s is None
                or request.expected_s is None
                or time.time() - request.attempted_at <= LATE_FACTOR * request.expected_s
                or current.predicted_s >= own.predicted_s
            ):
                return
            current.in_flight += 1
        attempted_at = time.time()
        future = current.session.submit(request.index, request.feeds, timeout_s=timeout_s)
        request.hedge = _Hedge(current, future, attempted_at)
        log_event(
            logging.INFO,
            "adapt.hedge",
            request=request.index,
            from_plan=request.running.plan_id,
            to_plan=current.plan_id,
        )

    def _result(
        self, request: _Request, running: _Running, attempted_at: float, result: InferResult
    ) -> AdaptResult:
        """The request's answer from ``running``; the other try of a hedged request is left to
        finish (or fail) unseen, and its plan's count of requests in flight drops then."""
        tries = [(request.running, request.future)]
        if request.hedge is not None:
            tries.append((request.hedge.running, request.hedge.future))
        for plan, future in tries:
            if plan is running or future.done():
                self._finished(plan)
            else:
                future.add_done_callback(lambda _, plan=plan: self._finished(plan))
        return AdaptResult(
            request.index,
            result,
            running.plan_id,
            request.submitted_at,
            request.attempts,
            attempted_at - request.submitted_at + result.record.latency_s,
            hedged=request.hedge is not None,
        )

    def _retry(self, request: _Request) -> bool:
        error = request.future.result().error
        return (
            isinstance(error, PeerDisconnected | PeerTimeout)
            and error.peer is not None
            and error.peer != self.infra.device
            and request.attempts < self.policy.max_attempts
        )

    def _resubmit(self, request: _Request, timeout_s: float | None) -> _Request:
        error = request.future.result().error
        assert error is not None and error.peer is not None
        self._finished(request.running)
        self._node_down(error.peer, str(error))
        return self._submit(
            request.index, request.feeds, request.submitted_at, timeout_s, request.attempts + 1
        )

    def _finished(self, running: _Running) -> None:
        with self._lock:
            running.in_flight -= 1
        self._wake.set()  # a drained old plan can be retired now

    def _node_down(self, node: str, why: str) -> None:
        """Leave ``node`` out of planning; if the running plan uses it, run the device-only
        fallback until the next re-plan finds better."""
        with self._lock:
            state = self._state
            known = node in state.down
            state.down.add(node)
            moved = node in state.current.candidate.nodes
            before = state.current.plan_id
            if moved:
                # A node that fails again on the same plan (a link too slow for the transport's
                # heartbeat looks like a dead node) must not draw the stream back every check:
                # the plan waits min_interval_s × 2, × 4, … before it is gone back to.
                key = state.current.candidate.key
                count = state.embargo.get(key, (0.0, 0))[1] + 1
                wait = min(self.policy.min_interval_s * 2**count, EMBARGO_MAX_S)
                state.embargo[key] = (time.time() + wait, count)
                state.left = key
                state.current = state.fallback
                state.last_switch = time.time()
        if not known or moved:
            self._decide(
                "failover",
                before,
                state.fallback.plan_id if moved else before,
                node=node,
                reason=why,
            )
        self._wake.set()

    # -- re-planning ---------------------------------------------------------------------

    def _build_warm(self) -> None:
        """The nominal problem's model for re-plans to update (docs/planner.md, *Warm
        re-planning*): a build per link and node, seconds on a busy host, so on its own
        thread; until it is there, each re-plan builds its model."""
        try:
            self._warm = WarmModel(self.problem)
        except Exception as exc:  # re-plans simply keep building their models
            log_event(logging.WARNING, "adapt.warm_model_failed", error=repr(exc))

    def _adapt_loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.policy.check_interval_s)
            self._wake.clear()
            if self._stopped.is_set():
                return
            with self._lock:
                seen = self._changes
            try:
                self._probe_down_nodes()
                self._check(functools.partial(self._release, seen))
            except Exception as exc:  # the stream goes on with the plan it has
                log_event(logging.ERROR, "adapt.check_failed", error=repr(exc))
            self._release(seen)
            try:
                self._retire_drained()
            except Exception as exc:
                log_event(logging.ERROR, "adapt.retire_failed", error=repr(exc))

    def _release(self, seen: int) -> None:
        """The changes up to ``seen`` are decided on: requests held for them may go."""
        with self._decided:
            self._checked = max(self._checked, seen)
            self._decided.notify_all()

    def _changed(self) -> None:
        """The observer saw a link or node change: check now, and hold new requests until
        that check has decided."""
        with self._lock:
            self._changes += 1
        self._wake.set()

    def _probe_down_nodes(self) -> None:
        with self._lock:
            down = sorted(self._state.down)
        for node in down:
            address = self.infra.node(node).address
            if address and self._answers(node, address):
                with self._lock:
                    self._state.down.discard(node)
                self._decide("node-back", None, None, node=node, reason="answers health again")

    def _answers(self, node: str, address: str) -> bool:
        """Whether ``node``'s agent answers ``health`` (a refused handshake, e.g. a link
        emulator whose agent is gone, is no answer)."""
        try:
            answer = health_of(
                address,
                token=self._token,
                timeout_s=HEALTH_TIMEOUT_S,
                node=node,
                curve=self._curve,
            )
        except TransportError:
            return False
        return answer is not None

    def _check(self, decided: Callable[[], None]) -> None:
        """Re-plan under the observed costs and switch if it pays; ``decided`` is called once
        the plan new requests should go to is set, before any deploy that may take long."""
        with self._lock:
            running, down = self._state.current, set(self._state.down)
            left = self._state.left
        problem = observed_problem(self.problem, self.observed(), self.policy, down=down)
        verdict = replan(problem, running.candidate, self.policy, self._warm)
        needed = self.policy.margin + (self.policy.hysteresis if verdict.fresh.key == left else 0.0)
        with self._lock:
            embargoed = self._state.embargo.get(verdict.fresh.key, (0.0, 0))[0] > time.time()
        if (
            verdict.fresh.key == running.candidate.key
            or verdict.running_cost <= 1.0 + needed
            or embargoed
        ):
            with self._lock:
                self._state.held = None  # a plan deployed ahead for nothing is retired
            return
        costs = {
            "running_cost": verdict.running_cost,
            "running_latency_s": (
                None if verdict.running_eval is None else verdict.running_eval.latency_s
            ),
            "fresh_latency_s": verdict.fresh_eval.latency_s,
        }
        with self._lock:
            target = self._state.plans.get(verdict.fresh.key)
        if target is None:
            # Deploying may take seconds (the components cross the same links): move to the
            # ready device-only plan first when that alone pays.
            self._interim(problem, verdict, running)
            decided()
            target = self._plan_for(verdict.fresh)
            if target is None:
                return
        with self._lock:
            running, last_switch = self._state.current, self._state.last_switch
        if running is target:
            return
        wait = last_switch + self.policy.min_interval_s - time.time()
        if wait > 0 and verdict.running_cost != math.inf:
            with self._lock:
                new = self._state.held != verdict.fresh.key
                self._state.held = verdict.fresh.key
            if new:
                self._decide(
                    "held", running.plan_id, target.plan_id, reason=f"{wait:.2f} s left", **costs
                )
            return
        self._switch(running, target, "observed costs", **costs)

    def _interim(self, problem: PlanningProblem, verdict: Verdict, running: _Running) -> None:
        """Switch to the device-only fallback at once when it beats the running plan by the
        margin under ``problem``'s costs (whatever ``min_interval_s`` says: the better plan is
        on its way)."""
        fallback = self._state.fallback
        if running is fallback:
            return
        priced = price(problem, fallback.candidate)
        if priced is None:
            return
        cost = relative_cost(problem, priced, verdict.fresh_eval)
        if verdict.running_cost > (1.0 + self.policy.margin) * cost:
            self._switch(
                running,
                fallback,
                "interim: the device-only plan while the fresh plan deploys",
                running_cost=verdict.running_cost,
                running_latency_s=(
                    None if verdict.running_eval is None else verdict.running_eval.latency_s
                ),
                fresh_latency_s=priced.latency_s,
            )

    def _switch(self, running: _Running, target: _Running, reason: str, **costs: Any) -> None:
        with self._lock:
            if self._state.current is not running:  # a failover moved it meanwhile
                return
            running.predicted_s = costs.get("running_latency_s")
            target.predicted_s = costs.get("fresh_latency_s")
            self._state.left = running.candidate.key
            self._state.current = target
            self._state.last_switch = time.time()
            self._state.held = None
        self._decide("switch", running.plan_id, target.plan_id, reason=reason, **costs)

    def _plan_for(self, candidate: Candidate) -> _Running | None:
        """The running plan for ``candidate``, deployed ahead of time if it is new; ``None``
        when its deployment failed, now or within the last :data:`DEPLOY_RETRY_S`."""
        with self._lock:
            known = self._state.plans.get(candidate.key)
        if known is not None:
            return known
        if time.time() - self._failed.get(candidate.key, -math.inf) < DEPLOY_RETRY_S:
            return None
        try:
            running = self._open(candidate)
        except TransportError as exc:
            self._failed[candidate.key] = time.time()
            log_event(logging.WARNING, "adapt.deploy_failed", error=str(exc))
            return None
        with self._lock:
            self._state.plans[candidate.key] = running
        return running

    def _retire_drained(self) -> None:
        """Undeploy and close the plans that are neither current, the fallback nor held ready,
        and have no request in flight."""
        with self._lock:
            state = self._state
            drained = [
                (key, r)
                for key, r in state.plans.items()
                if r is not state.current
                and r is not state.fallback
                and key != state.held  # deployed ahead, waiting for min_interval_s
                and r.in_flight == 0
            ]
            for key, _ in drained:
                del state.plans[key]
            down = set(state.down)
        for _, running in drained:
            try:
                # A down node holds nothing worth waiting a control timeout for.
                running.session.undeploy(set(running.session.deployment.addresses) - down)
            except Exception as exc:  # a node that is down holds nothing worth undeploying
                log_event(logging.INFO, "adapt.undeploy_failed", error=repr(exc))
            running.session.close()
            self._decide("retired", running.plan_id, None, reason="requests drained")

    def _open(self, candidate: Candidate) -> _Running:
        deployment = build_deployment(
            self._model,
            candidate.assignment,
            self.infra,
            input_shapes=dict(self.problem.graph.model.input_shapes) or None,
            quantized=candidate.quantized,
            calibration=self._calibration,
            preprocess=self._preprocess,
            profiles=self.problem.profiles,
        )
        session = connect(deployment, self.infra, observer=self.observer, **self._connect)
        priced = price(self.problem, candidate)
        running = _Running(
            candidate,
            deployment.id[:12],
            session,
            predicted_s=None if priced is None else priced.latency_s,
        )
        with self._lock:
            self.plans[running.plan_id] = candidate
        return running

    def _decide(
        self,
        kind: DecisionKind,
        from_plan: str | None,
        to_plan: str | None,
        **fields: object,
    ) -> None:
        decision = Decision(time.time(), kind, from_plan, to_plan, **fields)  # type: ignore[arg-type]
        with self._lock:
            self.decisions.append(decision)
        log_event(
            logging.INFO,
            f"adapt.{kind}",
            **{k: v for k, v in decision.to_dict().items() if k not in ("kind", "at")},
        )


def _answered(request: _Request) -> tuple[_Running, float, InferResult] | None:
    """The try that answers ``request`` (plan, when it was sent, result), once there is one:
    the first successful one of a hedged request, else the first try's when every try is
    over; ``None`` while it is still pending."""
    tries = [(request.running, request.attempted_at, request.future)]
    if request.hedge is not None:
        hedge = request.hedge
        tries.append((hedge.running, hedge.attempted_at, hedge.future))
    for running, attempted_at, future in tries:
        if future.done() and future.result().error is None:
            return running, attempted_at, future.result()
    if all(future.done() for _, _, future in tries):
        return request.running, request.attempted_at, request.future.result()
    return None


def _failed(future: concurrent.futures.Future[InferResult]) -> bool:
    return future.done() and future.result().error is not None
