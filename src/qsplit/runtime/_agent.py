"""The agent: one long-running process per machine that holds and runs components.

Control plane (request → ``reply``): ``deploy`` (ONNX bytes checked against their sha256 before
ORT sees them), ``undeploy``, ``health``, ``stats``, ``profile`` (time every block of a model
here, see :mod:`qsplit.runtime._profile`), ``slowdown`` (run every component this many times
slower from now on: the testbed plays a node that got busy). Data plane: ``tensors`` messages fill a
per-request inbox; a component runs as soon as all its inputs are there, its outputs are pushed
straight to the nodes that read them, and a ``done`` report (carrying any model outputs) goes
to the requester. Where the deployment routes data through other nodes (no direct link), the
message names the hops still ahead (``relay``) and each agent on the way forwards it, store and
forward, without holding any of that deployment.

One exception boundary per message (:meth:`Agent._handle`): every message, valid or rejected by
the wire checks, is handled in its own task by one function that dispatches it and answers;
whatever goes wrong below is counted, logged with the peer and the reason, and answered with an
error where a reply is due, so no frame or peer can silence the agent. The loops themselves
are supervised (restarted, logged and counted if they ever end) and a heartbeat measures how
late the loop runs, which ``health`` reports: a loop blocked for :data:`STUCK_S` reads
``state: stuck``.

One asyncio loop owns the sockets; ORT runs in a thread pool (it releases the GIL), so
components of different requests overlap with network I/O.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import logging
import math
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from qsplit.errors import InputError
from qsplit.profile import Statistic, emulated_duration_s, pad_to, reference_time_s
from qsplit.runtime._hosted import ComponentHost, HostedComponent
from qsplit.runtime._keys import CurveKeys
from qsplit.runtime._log import configure as configure_logging
from qsplit.runtime._log import event, watch
from qsplit.runtime._memory import release_free_memory
from qsplit.runtime._profile import MISSING, ModelStore, profile_here
from qsplit.runtime._selfcontained import check_self_contained
from qsplit.runtime._transport import Endpoint, Received, Rejected, ZmqEndpoint, check_address
from qsplit.runtime._watchdog import Watchdog
from qsplit.runtime._wire import CODECS, Limits, Message, Quant, quant_of
from qsplit.runtime.errors import ProtocolError, TransportError

REQUEST_SWEEP_S = 1.0
"""How often requests past their deadline are dropped (their upstream failed)."""
MAX_SLOWDOWN = 1000.0
"""Largest ``slowdown`` factor an agent accepts (beyond it a run of 10 ms would take minutes)."""
RESTART_DELAY_S = 0.1
"""Pause before a supervised loop that ended is started again (no busy loop on a bug)."""
WARMUP_RUNS = 2
"""Runs of a component padded to its profiled time before its first request
(:meth:`Agent._warm_up`): glibc serves the first run's large buffers by ``mmap`` and, once they
are freed, raises its threshold, so the second run faults in heap pages too; the third faults
none."""
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}
"""ORT's tensor type names: outputs computed into preallocated arrays, zeros to warm up on."""


@dataclass(frozen=True)
class AgentSettings:
    """How an agent listens and runs components."""

    name: str
    listen: str
    """``host:port``; port 0 picks a free port (printed at start)."""
    token: str | None = None
    """Shared secret every message must carry; required unless listening on loopback."""
    threads: int = 1
    """ORT intra-op threads per component: agents share cores on a testbed."""
    workers: int = 1
    """Components this agent runs at the same time."""
    padding_factor: float = 1.0
    """Pad each component run to this × its time here (1: none). Not a node description: the
    testbed derives it from the node's absolute ``reference_time`` and this host's
    (:func:`qsplit.profile.padding_factor`)."""
    emulated: bool = False
    """This agent plays a node of another speed (the testbed's agents): each component runs in
    the time the deployment gives it (``compute_s``), or ``padding_factor ×`` its time here,
    even at factor 1 (a host up to 5 % slower than the node). A real node (``False``, the
    default) runs as fast as it runs unless ``padding_factor`` > 1."""
    limits: Limits = field(default_factory=Limits)
    send_timeout_s: float = 5.0
    """How long a push to a peer may wait for the peer to accept it."""
    statistic: Statistic = "median"
    """How repeated timings are summarised in this agent's profiles and, on an emulated slower
    node, in the reference time each run is padded to (``min`` on the testbed)."""
    routes: Mapping[str, str] = field(default_factory=dict)
    """Node → ``host:port`` this agent uses to reach that node instead of the address a
    deployment or a relayed message names: the testbed sends each directed link through its own
    link emulator."""
    shared_memory: bool = True
    """Exchange large tensors with peers on this host through shared memory; off on the
    testbed, whose emulated links must carry every byte."""
    max_deadline_s: float = 300.0
    """Longest an open request may hold this agent's memory, whatever deadline its sender set
    (the earlier of the two applies)."""
    max_buffered_bytes: int = 2**30
    """Received tensor bytes all open requests may hold together; data beyond it is refused
    with an error to its requester."""
    max_requests_per_peer: int = 256
    """Open requests one requester may have on this agent; more are refused the same way."""
    curve: CurveKeys | None = None
    """This agent's CURVE keys: it then accepts only CURVE clients with a listed key and
    reaches its peers with CURVE. Required off loopback unless ``allow_plaintext``."""
    allow_plaintext: bool = False
    """Listen off loopback without CURVE (a network trusted end to end, a VPN): the token is
    then sent, and the tensors travel, in clear."""

    def __post_init__(self) -> None:
        host = self.listen.rpartition(":")[0].strip("[]")
        if self.token is not None and not self.token.strip():
            # An empty token (--token "", or QSPLIT_TOKEN set but empty) would let every
            # tokenless message through while looking protected.
            raise InputError(
                f"agent {self.name!r}: the token is empty",
                field="--token",
                fix="pass a non-empty secret, or unset QSPLIT_TOKEN to run without one on "
                "127.0.0.1",
            )
        if self.token is None and not _is_loopback(host):
            raise InputError(
                f"agent {self.name!r} would listen on {self.listen} without a token",
                field="--token",
                fix="pass --token SECRET (the same on every agent and client), or listen on "
                "127.0.0.1",
            )
        if self.curve is None and not self.allow_plaintext and not _is_loopback(host):
            raise InputError(
                f"agent {self.name!r} would listen on {self.listen} without CURVE encryption",
                field="--curve-key",
                fix=f"make a key pair with `qsplit keys generate {self.name}`, put the line of "
                f"{self.name}.pub under the node in the infra file (every node likewise), and "
                f"start with --curve-key {self.name}.key --infra infra.yaml; or listen on "
                "127.0.0.1, or pass --allow-plaintext on a network you trust end to end",
            )
        try:
            emulated_duration_s(1.0, self.padding_factor)
        except InputError as exc:
            raise InputError(exc.problem, field="--padding-factor", fix=exc.fix) from None


def check_gateway(settings: AgentSettings) -> None:
    """Refuse settings a gateway cannot honour: its components run on another engine
    (:mod:`qsplit.runtime._hosted`), which it cannot pad to an emulated speed."""
    if settings.emulated or settings.padding_factor > 1.0:
        raise InputError(
            f"agent {settings.name!r}: a gateway's components run on another engine, which "
            "it cannot pad to an emulated speed",
            field="--backend",
            fix="drop --emulated and --padding-factor, or run the components in the agent "
            "(--backend local)",
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Component:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    routes: dict[str, list[str]]
    returns: tuple[str, ...]
    peers: dict[str, str]
    """Node → its agent's address as the deployment names it (see :meth:`Agent._reach`)."""
    via: dict[str, list[str]]
    """Node without a direct link from here → the nodes that relay to it, in order."""
    return_via: list[str]
    """The nodes that relay model outputs to the requester (empty: a direct link)."""
    quant: dict[str, Quant]
    session: ort.InferenceSession | None
    """Its ONNX Runtime session; ``None`` when :attr:`hosted`."""
    fixed_outputs: dict[str, tuple[tuple[int, ...], np.dtype]]
    """Shape and dtype of each output whose shape is fixed (those can be preallocated)."""
    reference_s: float | None = None
    """On an emulated slower node, this component's time measured at deploy: every run is
    padded to ``padding_factor ×`` it (``None``: padded to ``padding_factor ×`` each run's time).
    With the ``min`` statistic it is the least time seen so far, live runs included."""
    target_s: float | None = None
    """On an emulated slower node, the node's profiled time for this component, when the
    deployment gave one: every run is padded to exactly it, so the emulated node is the one its
    profile describes, whatever this host's load does to the component's own runs."""
    codecs: dict[str, str] = field(default_factory=dict)
    """Output → the codec its frames are compressed with on links (the plan's ``link_codec``)."""
    hosted: HostedComponent | None = None
    """The component as a gateway's engine runs it (:mod:`qsplit.runtime._hosted`)."""


RequestKey = tuple[str, str, bytes]
"""An open request on an agent: its deployment, its number, and the requester it answers to.
Request numbers are the requester's own, so two requesters of one deployment (devices sharing
a gateway) send the same numbers; the requester keeps their requests apart."""


@dataclass
class _Request:
    reply_to: bytes
    deadline: float
    """Wall-clock time (``time.time``) after which the request is abandoned."""
    inbox: dict[str, np.ndarray] = field(default_factory=dict)
    held_bytes: int = 0
    """Bytes of received tensors in ``inbox``, counted in the agent's buffer budget."""
    started: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)
    arrivals: list[dict[str, Any]] = field(default_factory=list)
    """Transfers into this node not yet reported to the requester."""


class Agent:
    """The state and message handlers of one agent, over any :class:`Endpoint`."""

    def __init__(
        self,
        settings: AgentSettings,
        endpoint: Endpoint,
        models: ModelStore,
        host: ComponentHost | None = None,
    ) -> None:
        if host is not None:
            check_gateway(settings)
        self.settings = settings
        self._host = host
        self._endpoint = endpoint
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="component")
        # Profiles run one at a time beside the component pool: the agent keeps answering
        # health and deploy meanwhile, and two profiles never disturb each other's timings.
        self._profiler = ThreadPoolExecutor(1, thread_name_prefix="profile")
        self._models = models
        self._deployments: dict[str, dict[str, _Component]] = {}
        self._requests: dict[RequestKey, _Request] = {}
        self._buffered_bytes = 0
        """Sum of the open requests' ``held_bytes``: back to 0 once none is open."""
        self._per_peer: Counter[bytes] = Counter()
        """Open requests by requester."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._counts: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        """Messages whose handling failed, by kind (beyond wire rejections)."""
        self._compute_s = 0.0
        self._slowdown = 1.0
        """Every run's padded time is multiplied by this (``slowdown`` message; 1: none)."""
        self._started = time.time()
        self._watchdog = Watchdog()

    # -- loop ------------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Handle messages until ``stop`` is set."""
        loops = {"receive": self._receive, "sweep": self._sweep, "heartbeat": self._watchdog.beat}
        tasks = [asyncio.create_task(self._supervise(n, f)) for n, f in loops.items()]
        self._watchdog.start()
        try:
            await stop.wait()
        finally:
            self._watchdog.stop()
            for task in tasks:
                task.cancel()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._profiler.shutdown(wait=False, cancel_futures=True)
            if self._host is not None:
                self._host.close()

    async def _supervise(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run one of the agent's loops for good: should it ever end (a bug below every
        boundary), it is logged, counted and started again, so the agent never goes deaf."""
        while True:
            try:
                await loop()
            except Exception as exc:
                event(logging.ERROR, "loop.died", loop=name, error=repr(exc))
                logging.getLogger("qsplit.runtime").exception("loop %s died", name)
            self._counts["task_deaths"] += 1
            await asyncio.sleep(RESTART_DELAY_S)

    async def _receive(self) -> None:
        while True:
            self._spawn(self._handle(await self._endpoint.recv()), "message")

    async def _handle(self, item: Received | Rejected) -> None:
        """The one boundary every message passes: dispatch, then answer; any failure below is
        counted, logged (peer, kind, reason) and answered where a reply is due — a control
        request's ``reply``, or an ``error`` to the requester of a data message."""
        if isinstance(item, Rejected):
            kind, body, error = item.kind, item.body, item.error
            event(
                logging.WARNING,
                "message.rejected",
                peer=_peer(item),
                kind=kind,
                reason=error.reason,
                detail=str(error),
            )
            # ``reason`` lets a requester with a wrong token tell a refusal from a dead agent.
            answer: dict[str, Any] | None = {
                "ok": False,
                "error": f"{error} (node {self.settings.name!r})",
                "reason": error.reason,
            }
        else:
            kind, body = item.message.kind, item.message.body
            try:
                answer = await self._dispatch(item)
            except ProtocolError as exc:
                self._endpoint.rejected[exc.reason] += 1
                answer = self._failure(item, "rejected", str(exc), exc.reason)
            except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
                self._endpoint.rejected["malformed"] += 1
                answer = self._failure(
                    item, "rejected", f"malformed {kind!r}: {exc!r}", "malformed"
                )
            except InputError as exc:
                answer = self._failure(item, "refused", str(exc), "refused")
            except Exception as exc:  # a bug or a library's surprise: answered, never fatal
                self._failed[kind] += 1
                logging.getLogger("qsplit.runtime").debug("handler failed", exc_info=exc)
                text = f"node {self.settings.name!r} failed to handle {kind!r}: {exc!r}"
                answer = self._failure(item, "failed", text, type(exc).__name__)
        if answer is None:
            return
        route = item.route
        if route is not None and body.get("cid") is not None:
            await self._answer(route, {"cid": body["cid"], **answer})
        elif kind == "tensors" and isinstance(body.get("reply_to"), bytes):
            # A data message has no reply, but its requester waits: tell it now, not at its
            # deadline (e.g. a model input under a name no component reads).
            error = {"dep": str(body.get("dep")), "req": str(body.get("req")), **answer}
            await self._report(body["reply_to"], "error", error)

    def _failure(self, item: Received, what: str, error: str, reason: str) -> dict[str, Any]:
        level = logging.ERROR if what == "failed" else logging.WARNING
        event(
            level,
            f"message.{what}",
            peer=_peer(item),
            kind=item.message.kind,
            reason=reason,
            detail=error,
        )
        return {"ok": False, "error": error, "reason": reason}

    async def _dispatch(self, received: Received) -> dict[str, Any] | None:
        handlers: dict[str, Callable[[Received], Any]] = {
            "deploy": self._deploy,
            "undeploy": self._undeploy,
            "health": self._health,
            "stats": self._stats,
            "profile": self._profile,
            "slowdown": self._set_slowdown,
            "tensors": self._tensors,
            "done": self._relay,
        }
        handler = handlers.get(received.message.kind)
        if handler is None:
            raise ValueError(f"unknown message kind {received.message.kind!r}")
        answer = handler(received)
        if asyncio.iscoroutine(answer):
            answer = await answer
        return answer

    async def _answer(self, route: bytes, body: Mapping[str, Any], **kwargs: Any) -> None:
        try:
            await self._endpoint.reply(route, Message("reply", body, **kwargs))
        except TransportError:
            self._counts["undeliverable"] += 1

    def _spawn(self, coroutine: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``coroutine`` as a task kept alive until it ends; its death is logged and
        counted (``task_deaths``), never silent."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        watch(task, what, functools.partial(self._counts.update, ["task_deaths"]))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(REQUEST_SWEEP_S)
            now = time.time()
            expired = [k for k, r in self._requests.items() if r.deadline < now]
            for key in expired:
                self._counts["expired"] += 1
                self._close(key)
            if expired:
                release_free_memory()

    def _close(self, key: RequestKey) -> None:
        """Forget an open request and give back what it held (finished, failed, expired or
        undeployed: every way out passes here, so the budget returns to 0)."""
        state = self._requests.pop(key, None)
        if state is not None:
            self._buffered_bytes -= state.held_bytes
            self._per_peer[state.reply_to] -= 1
            if not self._per_peer[state.reply_to]:
                del self._per_peer[state.reply_to]

    def _admit(self, key: RequestKey, body: Mapping[str, Any], nbytes: int) -> _Request:
        """The open request ``key``, created if new, once ``nbytes`` more fit the budgets;
        :class:`InputError` (answered to the requester) when they do not."""
        settings, name = self.settings, self.settings.name
        state = self._requests.get(key)
        reply_to = body["reply_to"]
        if state is None and self._per_peer[reply_to] >= settings.max_requests_per_peer:
            self._counts["refused_busy"] += 1
            raise InputError(
                f"node {name!r} has {settings.max_requests_per_peer} open requests from this "
                "requester already",
                fix="send fewer requests at once (lower --concurrency)",
            )
        if self._buffered_bytes + nbytes > settings.max_buffered_bytes:
            self._counts["refused_full"] += 1
            raise InputError(
                f"node {name!r} holds {self._buffered_bytes} bytes of open requests; "
                f"{nbytes} more would pass its limit of {settings.max_buffered_bytes}",
                fix="send fewer requests at once, or raise the agent's --max-buffered-mb",
            )
        if state is None:
            deadline = float(body["deadline"])
            if not math.isfinite(deadline):
                raise ValueError(f"deadline {deadline} is not a finite time")
            deadline = min(deadline, time.time() + settings.max_deadline_s)
            state = self._requests[key] = _Request(reply_to, deadline)
            self._per_peer[reply_to] += 1
        state.held_bytes += nbytes
        self._buffered_bytes += nbytes
        return state

    # -- control plane ---------------------------------------------------------------------

    async def _deploy(self, received: Received) -> dict[str, Any]:
        body, onnx_bytes = received.message.body, received.message.blobs["onnx"]
        digest = hashlib.sha256(onnx_bytes).hexdigest()
        if not isinstance(body["sha256"], str) or digest != body["sha256"]:
            self._counts["bad_hash"] += 1
            return {"ok": False, "error": f"component {body['name']!r}: sha256 mismatch, refused"}
        check_self_contained(onnx_bytes, str(body["name"]))
        optimize = body.get("graph_optimization", "all") == "all"
        if self._host is not None:
            return await self._deploy_hosted(received, optimize)
        loop = asyncio.get_running_loop()
        try:
            session = await loop.run_in_executor(self._pool, self._session, onnx_bytes, optimize)
        except Exception as exc:  # ORT raises plain RuntimeError subclasses for bad models
            return {"ok": False, "error": f"component {body['name']!r} does not load: {exc}"}
        reference_s, target_s = None, _target_s(body.get("compute_s"))
        pads = self.settings.emulated or self.settings.padding_factor > 1.0
        if pads and target_s is not None:
            await self._warm_up(str(body["name"]), session)
        if pads and target_s is None:
            feeds = {i.name: received.message.tensors.get(i.name) for i in session.get_inputs()}
            lacking = [name for name, value in feeds.items() if value is None]
            if lacking:
                error = (
                    f"component {body['name']!r} cannot be timed on this emulated node: no "
                    f"reference value came for its input {lacking[0]!r} (deploy it with its "
                    "reference inputs, or with a profiled compute_s)"
                )
                return {"ok": False, "error": error}
            timing = functools.partial(
                reference_time_s, session, feeds, statistic=self.settings.statistic
            )
            try:
                reference_s = await loop.run_in_executor(self._pool, timing)
            except Exception as exc:  # ORT raising on its reference inputs: the component's fault
                error = f"component {body['name']!r} fails when timed on its reference inputs: "
                error += str(exc)
                return {"ok": False, "error": error}
        component = _component(
            body,
            session=session,
            fixed_outputs=_fixed_outputs(session),
            reference_s=reference_s,
            target_s=target_s if pads else None,
        )
        return self._install(str(body["dep"]), component)

    async def _deploy_hosted(self, received: Received, optimize: bool) -> dict[str, Any]:
        """A gateway's deploy: the component goes to its engine, which may take seconds (a
        Serve application starting), so it waits in a thread of its own, not the pool's."""
        assert self._host is not None
        body, onnx_bytes = received.message.body, received.message.blobs["onnx"]
        load = functools.partial(
            self._host.load,
            str(body["name"]),
            onnx_bytes,
            str(body["sha256"]),
            list(map(str, body["inputs"])),
            list(map(str, body["outputs"])),
            optimize,
        )
        try:
            hosted = await asyncio.to_thread(load)
        except Exception as exc:  # the engine's own errors: the requester must hear them
            error = f"component {body['name']!r} could not be deployed on this gateway: {exc}"
            return {"ok": False, "error": error}
        component = _component(body, session=None, fixed_outputs={}, hosted=hosted)
        return self._install(str(body["dep"]), component)

    def _install(self, dep: str, component: _Component) -> dict[str, Any]:
        """Add a loaded component to its deployment and connect to its consumers."""
        replaced = self._deployments.setdefault(dep, {}).get(component.name)
        if replaced is not None:
            self._release(replaced)
        self._deployments[dep][component.name] = component
        # Connect to the consumers now: set-up takes round trips (TCP, then the messaging
        # handshake) that the first request over a slow link should not pay.
        for nodes in component.routes.values():
            for node in nodes:
                if node != self.settings.name:
                    self._endpoint.connect(self._next_hop(component, _hops(component, node))[0])
        if component.returns and component.return_via:
            self._endpoint.connect(self._next_hop(component, component.return_via)[0])
        return {"ok": True, "node": self.settings.name}

    async def _warm_up(self, name: str, session: ort.InferenceSession) -> None:
        """Run a component :data:`WARMUP_RUNS` times on zeros before its first request.

        A component padded to a fixed ``compute_s`` is otherwise never run before its first
        request, and the first runs of a fresh session are slower: each faulted in ~35 MB
        (8.5-9k minor page faults on YOLO11n's last 80 %), the later ones none. With little
        padding to spare (a fast node on a slow host) those runs overshoot their target.
        Zeros are not always inputs a component accepts (a ``Resize`` scale computed
        elsewhere); a run that fails is logged, and the component's first request then pays
        the cold start, as it did before.
        """
        feeds = _zero_feeds(session)
        if feeds is None:
            return
        loop = asyncio.get_running_loop()
        try:
            for _ in range(WARMUP_RUNS):
                await loop.run_in_executor(self._pool, session.run, None, feeds)
        except Exception as exc:  # ORT refusing zeros: not the component's fault
            event(logging.INFO, "deploy.warm_up_skipped", component=name, error=str(exc))

    def _reach(self, node: str, address: str) -> str:
        """Where to send for ``node``: this agent's own route to it (a testbed link emulator)
        or the address the deployment names."""
        reach = self.settings.routes.get(node, address)
        self._endpoint.identify(reach, node)
        return reach

    def _next_hop(self, component: _Component, hops: list[str]) -> tuple[str, list[list[str]]]:
        """The address of the first of ``hops`` and the ``relay`` list of the others: [node,
        address as the deployment names it], which each relay resolves with its own routes."""
        first, *rest = hops
        return self._reach(first, component.peers[first]), [[n, component.peers[n]] for n in rest]

    def _session(self, onnx_bytes: bytes, optimize: bool) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if optimize
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.intra_op_num_threads = self.settings.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def _release(self, component: _Component) -> None:
        # In a thread: the engine may hold its lock through another component's deploy
        # (seconds), and the agent must keep answering meanwhile.
        if self._host is not None and component.hosted is not None:
            release = asyncio.to_thread(self._host.release, component.hosted)
            self._spawn(release, f"release {component.name}")

    def _undeploy(self, received: Received) -> dict[str, Any]:
        dep = str(received.message.body["dep"])
        removed = self._deployments.pop(dep, {})
        for key in [k for k in self._requests if k[0] == dep]:
            self._close(key)
        for component in removed.values():
            self._release(component)
        release_free_memory()
        return {"ok": True, "removed": len(removed)}

    def _health(self, received: Received) -> dict[str, Any]:
        return {
            "ok": True,
            "node": self.settings.name,
            "uptime_s": time.time() - self._started,
            "deployments": {d: sorted(c) for d, c in self._deployments.items()},
            **self._watchdog.report(),
            "task_deaths": self._counts["task_deaths"],
        }

    def _stats(self, received: Received) -> dict[str, Any]:
        return {
            "ok": True,
            "node": self.settings.name,
            "rejected": dict(self._endpoint.rejected),
            "shared_tensors": dict(self._endpoint.shared),
            "compressed": dict(self._endpoint.compressed),
            "counts": dict(self._counts),
            "failed": dict(self._failed),
            "compute_s": self._compute_s,
            "slowdown": self._slowdown,
            "open_requests": len(self._requests),
            "buffered_bytes": self._buffered_bytes,
        }

    def _set_slowdown(self, received: Received) -> dict[str, Any]:
        """From now on every component run takes ``factor ×`` the time it would take: a run
        already under way keeps its time. Only slowing down is possible (padding cannot make a
        run faster than this host runs it), so the factor is at least 1."""
        factor = received.message.body["factor"]
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise TypeError(f"slowdown factor must be a number, got {factor!r}")
        if not 1.0 <= factor <= MAX_SLOWDOWN:
            raise ValueError(f"slowdown factor {factor!r} is outside [1, {MAX_SLOWDOWN:g}]")
        self._slowdown = float(factor)
        event(logging.INFO, "agent.slowdown", node=self.settings.name, factor=self._slowdown)
        return {"ok": True, "node": self.settings.name, "factor": self._slowdown}

    def _profile(self, received: Received) -> dict[str, Any] | None:
        """Start profiling in the background (answered when done) so the loop keeps serving."""
        body, name = received.message.body, self.settings.name
        if body["node"] != name:
            return {"ok": False, "error": f"this agent is node {name!r}, not {body['node']!r}"}
        sha256 = str(body["sha256"])
        blob = received.message.blobs.get("onnx")
        if blob is not None:
            check_self_contained(blob, f"profiled model {sha256[:12]}")
        path = self._models.add(sha256, blob) if blob is not None else self._models.path(sha256)
        if path is None:
            return {"ok": False, "error": MISSING}
        if received.route is None:
            raise ValueError("profile must arrive on the listening socket")
        job = functools.partial(
            profile_here,
            path,
            body,
            node=name,
            padding_factor=self.settings.padding_factor,
            threads=self.settings.threads,
            statistic=self.settings.statistic,
        )
        self._spawn(self._profile_job(received.route, body["cid"], job), "profile")
        return None

    async def _profile_job(
        self, route: bytes, cid: object, job: Callable[[], dict[str, Any]]
    ) -> None:
        name = self.settings.name
        try:
            profile = await asyncio.get_running_loop().run_in_executor(self._profiler, job)
        except Exception as exc:  # a model ORT or the analysis cannot handle: answered, not fatal
            error = f"profiling failed on node {name!r}: {exc}"
            await self._answer(route, {"cid": cid, "ok": False, "error": error})
            return
        await self._answer(route, {"cid": cid, "ok": True, "node": name, "profile": profile})

    # -- data plane ------------------------------------------------------------------------

    async def _tensors(self, received: Received) -> None:
        message, now = received.message, time.time()
        body = message.body
        if body["relay"]:
            await self._relay(received)
            return
        dep, req, reply_to = str(body["dep"]), str(body["req"]), body["reply_to"]
        if not isinstance(reply_to, bytes):
            raise TypeError("reply_to must be bytes")
        components = self._deployments.get(dep)
        if components is None:
            error = f"deployment {dep} is not on node {self.settings.name!r}: redeploy"
            await self._report(reply_to, "error", {"dep": dep, "req": req, "error": error})
            return
        unknown = set(message.tensors) - {i for c in components.values() for i in c.inputs}
        if unknown:  # the request could never complete: say so now, not at its deadline
            raise ValueError(
                f"tensor(s) {', '.join(sorted(unknown))} are inputs of no component of "
                f"deployment {dep} on node {self.settings.name!r}"
            )
        state = self._admit((dep, req, reply_to), body, message.payload_bytes)
        state.inbox.update(message.tensors)
        state.arrivals.extend(body.get("hops", ()))
        state.arrivals.append(self._arrival(message, now))
        self._start_ready(dep, req, state, components)

    def _arrival(self, message: Message, now: float) -> dict[str, Any]:
        """This hop of a transfer, as reported to the requester (sender's clock to ours)."""
        return {
            "from": str(message.body["from"]),
            "to": self.settings.name,
            "tensors": sorted(message.tensors),
            "bytes": message.wire_bytes,
            "transfer_s": max(0.0, now - float(message.body["sent_at"])),
        }

    async def _relay(self, received: Received) -> None:
        """Store and forward a message on its route: to the first node of its ``relay`` list,
        or, for a ``done`` report whose list is spent, to the requester.

        The relay holds nothing of the deployment: the message names each further hop with the
        address the deployment gave it (resolved through this agent's own routes), and carries
        the hops measured so far (``hops``), which its last receiver reports with its own.
        """
        message, now = received.message, time.time()
        body = message.body
        reply_to = body["reply_to"]
        if not isinstance(reply_to, bytes):
            raise TypeError("reply_to must be bytes")
        relay = [(str(node), str(address)) for node, address in body["relay"]]
        forwarded = Message(
            message.kind,
            {
                **body,
                "from": self.settings.name,
                "sent_at": time.time(),
                "relay": [list(hop) for hop in relay[1:]],
                "hops": [*body.get("hops", ()), self._arrival(message, now)],
            },
            message.tensors,
            message.quant,
            codecs=message.codecs,
        )
        self._counts["relayed"] += 1
        if not relay:
            if message.kind != "done":
                raise ValueError(f"a {message.kind!r} message with nowhere to go")
            await self._reply(reply_to, forwarded)
            return
        node, address = relay[0]
        try:
            await self._endpoint.send(self._reach(node, address), forwarded)
        except TransportError as exc:
            error = f"node {node!r} unreachable from relay {self.settings.name!r}: {exc}"
            body = {"dep": body["dep"], "req": body["req"], "error": error, "peer": node}
            await self._report(reply_to, "error", body)

    def _start_ready(
        self, dep: str, req: str, state: _Request, components: Mapping[str, _Component]
    ) -> None:
        for component in components.values():
            if component.name not in state.started and all(
                i in state.inbox for i in component.inputs
            ):
                state.started.add(component.name)
                self._spawn(self._run(dep, req, state, component), f"run {component.name}")

    async def _run(self, dep: str, req: str, state: _Request, component: _Component) -> None:
        feeds = {i: state.inbox[i] for i in component.inputs}
        buffers = self._output_buffers(component, state.reply_to)
        loop = asyncio.get_running_loop()
        try:
            outputs, compute_s = await loop.run_in_executor(
                self._pool, self._compute, component, feeds, buffers
            )
        except Exception as exc:  # whatever ORT raises: the requester must hear about it
            self._counts["failed"] += 1
            error = f"component {component.name} failed on node {self.settings.name!r}: {exc}"
            self._close((dep, req, state.reply_to))
            await self._report(state.reply_to, "error", {"dep": dep, "req": req, "error": error})
            return
        self._counts["runs"] += 1
        self._compute_s += compute_s
        by_node: dict[str, dict[str, np.ndarray]] = {}
        for tensor, value in outputs.items():
            for node in component.routes.get(tensor, ()):
                by_node.setdefault(node, {})[tensor] = value
        local = by_node.pop(self.settings.name, None)
        if local:
            state.inbox.update(local)
            self._start_ready(dep, req, state, self._deployments.get(dep, {}))
        body = {
            "dep": dep,
            "req": req,
            "component": component.name,
            "compute_s": compute_s,
            "arrivals": state.arrivals,
        }
        state.arrivals = []
        state.finished.add(component.name)
        if len(state.finished) == len(self._deployments.get(dep, {})):
            self._close((dep, req, state.reply_to))
        # Pushes are handed to zmq first: they are on the request's critical path, the report
        # is not. The report does not wait for them either: a dead consumer must not make this
        # node look stuck to the requester, which blames the first component that did not report.
        # A report carrying model outputs is data: without a direct link it is relayed.
        returns = {t: outputs[t] for t in component.returns}
        if returns and component.return_via:
            relayed = {"node": self.settings.name, "reply_to": state.reply_to, **body}
            report = self._send(component, component.return_via, "done", relayed, returns)
        else:
            report = self._report(state.reply_to, "done", body, returns, component.codecs)
        failures = await asyncio.gather(
            *(self._push(dep, req, state, component, n, t) for n, t in by_node.items()), report
        )
        for node, error in filter(None, failures):
            body = {"dep": dep, "req": req, "error": error, "peer": node}
            await self._report(state.reply_to, "error", body)

    def _output_buffers(self, component: _Component, reply_to: bytes) -> dict[str, np.ndarray]:
        """Shared-memory arrays for the outputs that leave for peers on this host: ORT writes
        them where the consumers will read them, and sending them copies nothing."""
        buffers = {}
        for tensor, (shape, dtype) in component.fixed_outputs.items():
            nodes = [n for n in component.routes.get(tensor, ()) if n != self.settings.name]
            peers: list[str | bytes] = [
                self._next_hop(component, _hops(component, n))[0] for n in nodes
            ]
            if tensor in component.returns:
                relay = component.return_via
                peers.append(self._next_hop(component, relay)[0] if relay else reply_to)
            buffer = self._endpoint.shared_buffer(peers, shape, dtype) if peers else None
            if buffer is not None:
                buffers[tensor] = buffer
        return buffers

    def _compute(
        self,
        component: _Component,
        feeds: dict[str, np.ndarray],
        buffers: dict[str, np.ndarray],
    ) -> tuple[dict[str, np.ndarray], float]:
        start, slowdown = time.perf_counter(), self._slowdown
        if component.hosted is not None:
            produced = component.hosted.run(feeds)
            values = [produced[name] for name in component.outputs]
        else:
            assert component.session is not None
            values = _execute(component.session, component.outputs, feeds, buffers)
        measured = time.perf_counter() - start
        if component.target_s is not None:
            return dict(zip(component.outputs, values, strict=True)), max(
                pad_to(start, component.target_s, slowdown), measured
            )
        if component.reference_s is not None and self.settings.statistic == "min":
            # A burst of load during the deploy-time runs must not slow every later run by
            # padding_factor × the burst: the least time seen is the undisturbed estimate.
            component.reference_s = min(component.reference_s, measured)
        # The profiler reports emulated_duration_s of its measurements, so a slower node's
        # profile and its live runs agree by construction.
        factor = self.settings.padding_factor * slowdown
        emulated = pad_to(start, component.reference_s or measured, factor)
        return dict(zip(component.outputs, values, strict=True)), max(emulated, measured)

    async def _push(
        self,
        dep: str,
        req: str,
        state: _Request,
        component: _Component,
        node: str,
        tensors: dict[str, np.ndarray],
    ) -> tuple[str, str] | None:
        """Send outputs to ``node``; the node and an error text when it cannot be reached."""
        body = {"dep": dep, "req": req, "reply_to": state.reply_to, "deadline": state.deadline}
        return await self._send(component, _hops(component, node), "tensors", body, tensors)

    async def _send(
        self,
        component: _Component,
        hops: list[str],
        kind: str,
        body: Mapping[str, Any],
        tensors: Mapping[str, np.ndarray],
    ) -> tuple[str, str] | None:
        """Send to the first of ``hops``, the others relaying; the first node and an error text
        when it cannot be reached."""
        address, relay = self._next_hop(component, hops)
        name = self.settings.name
        try:
            quant = {t: component.quant[t] for t in tensors if t in component.quant}
            codecs = {t: component.codecs[t] for t in tensors if t in component.codecs}
            header = {**body, "from": name, "sent_at": time.time(), "relay": relay}
            message = Message(kind, header, tensors, quant, codecs=codecs)
            await self._endpoint.send(address, message)
        except TransportError as exc:
            return hops[0], f"node {hops[0]!r} unreachable from {name!r}: {exc}"
        return None

    async def _report(
        self,
        reply_to: bytes,
        kind: str,
        body: Mapping[str, Any],
        tensors: Mapping[str, np.ndarray] | None = None,
        codecs: Mapping[str, str] | None = None,
    ) -> None:
        name = self.settings.name
        body = {"node": name, "from": name, "sent_at": time.time(), **body}
        tensors = tensors or {}
        codecs = {t: c for t, c in (codecs or {}).items() if t in tensors}
        await self._reply(reply_to, Message(kind, body, tensors, codecs=codecs))

    async def _reply(self, reply_to: bytes, message: Message) -> None:
        """Hand ``message`` to the requester, back along the connection it opened to this agent."""
        try:
            await self._endpoint.reply(reply_to, message)
        except TransportError:
            self._counts["undeliverable"] += 1


def _peer(item: Received | Rejected) -> str | bytes | None:
    """Who sent ``item``, for the log: its routing id, or the connection's address."""
    return item.route if item.route is not None else item.peer


def _component(body: Mapping[str, Any], **engine: Any) -> _Component:
    """A deploy message's component, run by ``engine`` (its session or hosted form)."""
    return _Component(
        name=str(body["name"]),
        inputs=tuple(map(str, body["inputs"])),
        outputs=tuple(map(str, body["outputs"])),
        routes={str(t): list(map(str, n)) for t, n in dict(body["routes"]).items()},
        returns=tuple(map(str, body["returns"])),
        peers={str(n): check_address(a) for n, a in dict(body["peers"]).items()},
        via={str(n): list(map(str, v)) for n, v in dict(body["via"]).items()},
        return_via=list(map(str, body["return_via"])),
        quant={str(t): quant_of(s, z) for t, (s, z) in body.get("quant", {}).items()},
        codecs=_codecs(body.get("codecs", {})),
        **engine,
    )


def _hops(component: _Component, node: str) -> list[str]:
    """The nodes a push to ``node`` goes through: its relays, then ``node`` itself."""
    return [*component.via.get(node, ()), node]


def _zero_feeds(session: ort.InferenceSession) -> dict[str, np.ndarray] | None:
    """Zeros for every input of ``session``; ``None`` if one has a dynamic shape or a type
    :data:`ORT_DTYPES` lacks."""
    inputs = session.get_inputs()
    if not all(i.type in ORT_DTYPES and all(isinstance(d, int) for d in i.shape) for i in inputs):
        return None
    return {i.name: np.zeros(i.shape, ORT_DTYPES[i.type]) for i in inputs}


def _fixed_outputs(session: ort.InferenceSession) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {
        o.name: (tuple(o.shape), np.dtype(ORT_DTYPES[o.type]))
        for o in session.get_outputs()
        if o.type in ORT_DTYPES and all(isinstance(d, int) for d in o.shape)
    }


def _execute(
    session: ort.InferenceSession,
    outputs: tuple[str, ...],
    feeds: dict[str, np.ndarray],
    buffers: dict[str, np.ndarray],
) -> list[np.ndarray]:
    """Run ``session``; the outputs in ``buffers`` are written into those arrays."""
    if not buffers:
        return session.run(list(outputs), feeds)
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    for name in outputs:
        if name in buffers:
            into = buffers[name]
            binding.bind_output(name, "cpu", 0, into.dtype.type, list(into.shape), into.ctypes.data)
        else:
            binding.bind_output(name, "cpu")
    session.run_with_iobinding(binding)
    produced = binding.get_outputs()
    return [
        buffers[name] if name in buffers else value.numpy()
        for name, value in zip(outputs, produced, strict=True)
    ]


async def serve(
    settings: AgentSettings,
    *,
    on_ready: Callable[[str], None] = lambda address: None,
    host: ComponentHost | None = None,
) -> None:
    """Run an agent until SIGINT/SIGTERM; ``on_ready`` gets the bound ``host:port``. With
    ``host`` it is a gateway: its components run on that engine (closed when it stops)."""
    endpoint = await ZmqEndpoint.open(
        listen=settings.listen,
        token=settings.token,
        limits=settings.limits,
        send_timeout_s=settings.send_timeout_s,
        shared_memory=settings.shared_memory,
        curve=settings.curve,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with tempfile.TemporaryDirectory(prefix=f"qsplit-agent-{settings.name}-") as models:
            agent = Agent(settings, endpoint, ModelStore(Path(models)), host)
            on_ready(endpoint.address or settings.listen)
            await agent.serve(stop)
    finally:
        await endpoint.aclose()


def run_agent(
    settings: AgentSettings,
    *,
    on_ready: Callable[[str], None] = lambda address: None,
    host: ComponentHost | None = None,
) -> None:
    """Blocking form of :func:`serve`, for the CLI: its events are logged to stderr."""
    configure_logging()
    asyncio.run(serve(settings, on_ready=on_ready, host=host))


def _codecs(value: object) -> dict[str, str]:
    """A deploy message's ``codecs``: output tensor → one of :data:`CODECS`."""
    if not isinstance(value, dict):
        raise TypeError(f"codecs must be a map, got {type(value).__name__}")
    unknown = {c for c in value.values() if c not in CODECS}
    if unknown:
        raise ValueError(f"unknown codec(s) {sorted(map(repr, unknown))}, known: {CODECS}")
    return {str(t): str(c) for t, c in value.items()}


def _target_s(value: object) -> float | None:
    """A deploy message's ``compute_s``: a finite time ≥ 0, or ``None`` (absent or null)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
        raise ValueError(f"compute_s must be a time in seconds, got {value!r}")
    return float(value)
