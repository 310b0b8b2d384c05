"""The requester's side: deploy a :class:`Deployment` to its agents and run inferences.

A :class:`Session` owns a private event loop on a background thread (the sockets live there);
its public methods are blocking and thread-safe, so scripts and the CLI need no asyncio. The
client sends each model input to the nodes that read it and then only listens: agents push
intermediate tensors to each other and return model outputs and ``done`` reports to it.

Data follows the infrastructure's routes: a model input for a node the device has no direct link
to is handed to the first relay of :attr:`Deployment.relays`, and outputs come back through
relays the same way. Control messages (deploy, health, stats, ``done`` reports without outputs,
errors) go straight to each agent: the session assumes the control plane reaches every agent,
as a management network or VPN would; only the data plane is shaped by the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsplit.errors import InputError
from qsplit.infra import Infra, load_infra
from qsplit.model import Preprocess
from qsplit.profile import ComputeProfile
from qsplit.runtime._awaited import Expectations
from qsplit.runtime._deployment import ComponentSpec, Deployment, load_deployment
from qsplit.runtime._keys import CurveKeys, curve_keys
from qsplit.runtime._log import event
from qsplit.runtime._measure import ComponentRun, RequestRecord, Transfer
from qsplit.runtime._observe import Observed, Observer
from qsplit.runtime._quantized import CalibrationSource
from qsplit.runtime._transport import Received, Rejected, ZmqEndpoint
from qsplit.runtime._wire import Limits, Message
from qsplit.runtime.errors import PeerDisconnected, PeerTimeout, RemoteError, TransportError

HEALTH_PROBE_S = 1.0
"""How long a timed-out request waits for a health answer from the node it blames."""
RECONNECT_GRACE_S = 1.0
#: The slowest rate a component's bytes are expected to reach an agent at: a deploy's answer is
#: awaited for the control timeout plus its payload at this rate (a 98 MB ResNet-50 component
#: over a 5 MB/s uplink takes 20 s before the agent can even build its session).
DEPLOY_FLOOR_BYTES_PER_S = 1e6
"""Longest a new request waits for news of a disconnected node: it goes ahead as soon as the
node is reconnected (a restarted agent) and fails naming it as soon as a reconnection attempt
fails (refused: nothing listens there)."""


@dataclass(frozen=True)
class InferResult:
    """One request of a stream: outputs and record, or the error that ended it."""

    index: int
    outputs: dict[str, np.ndarray] | None
    record: RequestRecord
    error: TransportError | None = None


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, np.ndarray]]
    started: float
    remaining: set[str]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    runs: list[ComponentRun] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    inputs_sent_at: float | None = None
    """``time.time()`` the model inputs started out, once all are handed over."""
    input_bytes: dict[str, int] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)
    """Component → ``time.time()`` its ``done`` report came."""
    waits: set[str] = field(default_factory=set)
    """Components whose awaited input transfer the observer holds for this request."""


class Session:
    """A connection to the agents of one deployment. Use :func:`connect` to make one."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        device: str,
        token: str | None = None,
        timeout_s: float = 30.0,
        control_timeout_s: float = 10.0,
        graph_optimization: str = "all",
        limits: Limits | None = None,
        curve: CurveKeys | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.deployment = deployment
        self._observer = observer or Observer()
        self._profiled = {c.name: c.compute_s for c in deployment.components}
        self._expect = Expectations(deployment, device)
        self._link_bytes: dict[tuple[str, str], int] = {}
        """Bytes per link of the last request that finished, for the in-flight bounds."""
        self._curve = curve
        self._device = device
        self._token = token
        self._timeout_s = timeout_s
        self._control_timeout_s = control_timeout_s
        self._graph_optimization = graph_optimization
        self._limits = limits or Limits()
        self._identity = b"qsplit-client-" + uuid.uuid4().hex.encode()
        self._ids = itertools.count()
        self._control: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._requests: dict[str, _Pending] = {}
        self._node_of = {c.name: c.node for c in deployment.components}
        self._up: dict[str, bool] = {}
        """Per node: connected, or not yet known to be down."""
        self._news: dict[str, asyncio.Future[None]] = {}
        """Per node: resolved (and replaced) at its next connection event."""
        self._deployed = False
        """Whether this session deployed: only then does it redeploy to a node that returns."""
        self._recovering: dict[str, asyncio.Task[None]] = {}
        """Per node that came back: its redeployment of what it lacks, which requests await."""
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._endpoint: ZmqEndpoint = self._call_sync(self._open())

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> ZmqEndpoint:
        endpoint = await ZmqEndpoint.open(
            identity=self._identity,
            token=self._token,
            limits=self._limits,
            send_timeout_s=self._control_timeout_s,
            curve=self._curve,
        )
        for node, address in self.deployment.addresses.items():
            endpoint.identify(address, node)
            self._up[node] = True
            self._news[node] = asyncio.get_running_loop().create_future()
            endpoint.connect(address)
        endpoint.watch_peers(self._peer_changed)
        self._receiver = asyncio.create_task(self._receive(endpoint))
        return endpoint

    def close(self) -> None:
        """Stop the session (deployed components stay on the agents for the next one)."""
        if self._closed:
            return
        self._call_sync(self._aclose())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _aclose(self) -> None:
        self._receiver.cancel()
        for task in list(self._recovering.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for req, pending in self._requests.items():
            for component in pending.waits:  # a shared observer outlives this session
                self._observer.answered((self._identity, req, component))
            if not pending.future.done():
                pending.future.set_exception(TransportError("session closed"))
        await self._endpoint.aclose()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call_sync(self, coroutine: Any) -> Any:
        if self._closed:
            coroutine.close()
            raise TransportError("the session is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # -- control plane ---------------------------------------------------------------------

    def deploy(self, *, only_missing: bool = False) -> None:
        """Send every component to its agent (or only those the agents do not hold)."""
        self._call_sync(self._deploy(only_missing))

    def health(self) -> dict[str, dict[str, Any]]:
        """Each node's health answer (relays included); :class:`TransportError` naming a node
        that does not answer."""
        return self._call_sync(self._each("health"))

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each node's counters: runs, relayed messages, rejected messages by reason, compute
        time."""
        return self._call_sync(self._each("stats"))

    def observed(self) -> Observed:
        """Each link's bandwidth and latency and each node's speed against its profile, as
        estimated from this session's requests (and those of any session sharing its
        observer; docs/runtime.md, *Live measurement*)."""
        return self._observer.snapshot()

    def undeploy(self, nodes: Collection[str] | None = None) -> None:
        """Remove this deployment from every agent (or from those of ``nodes``: a caller
        that knows a node is down need not wait for it to time out)."""
        self._call_sync(self._each("undeploy", {"dep": self.deployment.id}, nodes))

    async def _each(
        self,
        kind: str,
        body: Mapping[str, Any] | None = None,
        only: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """Ask every agent of the deployment, relays included (or those in ``only``)."""
        nodes = tuple(n for n in self.deployment.addresses if only is None or n in only)
        answers = await asyncio.gather(*(self._request(n, kind, body or {}) for n in nodes))
        return dict(zip(nodes, answers, strict=True))

    async def _deploy(self, only_missing: bool, nodes: Collection[str] | None = None) -> None:
        """Deploy to ``nodes`` (default: all), only the components they lack if asked."""
        nodes = set(self.deployment.addresses if nodes is None else nodes)
        self._deployed = True
        have: dict[str, set[str]] = {}
        if only_missing:
            health = {n: await self._request(n, "health", {}) for n in nodes}
            have = {n: set(h["deployments"].get(self.deployment.id, ())) for n, h in health.items()}
        await asyncio.gather(
            *(
                self._request(
                    spec.node,
                    "deploy",
                    {
                        "dep": self.deployment.id,
                        "name": spec.name,
                        "inputs": list(spec.inputs),
                        "outputs": list(spec.outputs),
                        "sha256": spec.sha256,
                        "routes": {t: list(n) for t, n in spec.routes.items()},
                        "returns": list(spec.returns),
                        "quant": {t: [q.scale, q.zero_point] for t, q in spec.quant.items()},
                        "codecs": dict(spec.codecs),
                        "compute_s": spec.compute_s,
                        "peers": dict(self.deployment.addresses),
                        "via": {
                            h: list(via)
                            for (k, h), via in self.deployment.relays.items()
                            if k == spec.node
                        },
                        "return_via": list(
                            self.deployment.relays.get((spec.node, self._device), ())
                        ),
                        "graph_optimization": self._graph_optimization,
                    },
                    blobs={"onnx": spec.onnx},
                    tensors=spec.reference,
                    timeout_s=deploy_timeout_s(self._control_timeout_s, spec),
                )
                for spec in self.deployment.components
                if spec.node in nodes and spec.name not in have.get(spec.node, set())
            )
        )

    async def _request(
        self,
        node: str,
        kind: str,
        body: Mapping[str, Any],
        blobs: Mapping[str, bytes] | None = None,
        timeout_s: float | None = None,
        tensors: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, Any]:
        timeout_s = self._control_timeout_s if timeout_s is None else timeout_s
        address = self.deployment.addresses[node]
        cid = next(self._ids)
        future = self._control[cid] = asyncio.get_running_loop().create_future()
        message = Message(kind, {**body, "cid": cid}, tensors=tensors or {}, blobs=blobs or {})

        async def exchange() -> dict[str, Any]:
            await self._endpoint.send(address, message)
            return await future

        try:
            answer = await asyncio.wait_for(exchange(), timeout_s)
        except (TimeoutError, PeerTimeout):
            raise PeerTimeout(
                f"node {node!r} ({address}) did not answer {kind!r} within {timeout_s:g} s: "
                "is its agent running?",
                peer=node,
            ) from None
        finally:
            self._control.pop(cid, None)
        if not answer.get("ok"):
            raise _remote_error(node, address, answer)
        return answer

    # -- data plane ------------------------------------------------------------------------

    def infer(
        self, feeds: Mapping[str, np.ndarray], *, timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """Run one inference; model outputs by name. Raises :class:`TransportError` naming the
        node on failure or timeout."""
        outputs, _ = self.infer_timed(feeds, timeout_s=timeout_s)
        return outputs

    def infer_timed(
        self, feeds: Mapping[str, np.ndarray], *, timeout_s: float | None = None
    ) -> tuple[dict[str, np.ndarray], RequestRecord]:
        """:meth:`infer` with its measurements."""
        result = self._call_sync(self._infer(0, feeds, timeout_s))
        if result.error is not None:
            raise result.error
        return result.outputs, result.record

    def stream(
        self,
        feeds: Iterable[Mapping[str, np.ndarray]],
        *,
        max_in_flight: int = 4,
        timeout_s: float | None = None,
    ) -> Iterator[InferResult]:
        """Pipelined requests, at most ``max_in_flight`` at once, results in input order.

        A failed request yields a result with ``error`` set; the stream goes on.
        """
        if max_in_flight < 1:
            raise InputError("max_in_flight must be at least 1", field="concurrency")
        window: deque[Future[InferResult]] = deque()
        for index, one in enumerate(feeds):
            window.append(self.submit(index, one, timeout_s=timeout_s))
            if len(window) >= max_in_flight:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()

    def submit(
        self, index: int, feeds: Mapping[str, np.ndarray], *, timeout_s: float | None = None
    ) -> Future[InferResult]:
        """Start one request and return at once; its future never raises, a failure is the
        result's ``error``. For callers that schedule requests themselves (``qsplit.adapt``
        spreads a stream over the sessions of several plans)."""
        if self._closed:
            raise TransportError("the session is closed")
        return asyncio.run_coroutine_threadsafe(self._infer(index, feeds, timeout_s), self._loop)

    async def _infer(
        self, index: int, feeds: Mapping[str, np.ndarray], timeout_s: float | None
    ) -> InferResult:
        deployment = self.deployment
        missing = sorted(set(deployment.model_inputs) - set(feeds))
        if missing:
            raise InputError(
                f"missing model input(s) {', '.join(missing)}",
                fix=f"pass feeds for {', '.join(deployment.model_inputs)}",
            )
        timeout_s = self._timeout_s if timeout_s is None else timeout_s
        req = f"{next(self._ids)}"
        pending = self._requests[req] = _Pending(
            future=asyncio.get_running_loop().create_future(),
            started=time.perf_counter(),
            remaining={c.name for c in deployment.components},
        )
        by_node: dict[str, dict[str, np.ndarray]] = {}
        for name, nodes in deployment.model_inputs.items():
            pending.input_bytes[name] = np.asarray(feeds[name]).nbytes
            for node in nodes:
                by_node.setdefault(node, {})[name] = np.asarray(feeds[name])
        error: TransportError | None = None
        outputs = None
        try:
            body = {
                "dep": deployment.id,
                "req": req,
                "reply_to": self._identity,
                "from": self._device,
                "deadline": time.time() + timeout_s,
            }

            async def send() -> None:
                await self._connected()
                started = time.time()
                await asyncio.gather(
                    *(self._send_input(body, node, tensors) for node, tensors in by_node.items())
                )
                pending.inputs_sent_at = started
                self._await_next(req, pending)

            async def deliver() -> dict[str, np.ndarray]:
                # The answer may fail (a node disconnected) while inputs are still being sent.
                sending = asyncio.ensure_future(send())
                try:
                    await asyncio.wait(
                        {sending, pending.future}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not pending.future.done():
                        await sending
                    return await asyncio.shield(pending.future)
                finally:
                    if sending.done() and not sending.cancelled():
                        sending.exception()  # retrieved: the request's error is reported
                    sending.cancel()

            # One deadline for handing the inputs over and for the answer: a dead input node
            # must not hold the request beyond its timeout.
            outputs = await asyncio.wait_for(deliver(), timeout_s)
        except TimeoutError:
            self._requests.pop(req, None)
            error = await self._blame(req, pending, timeout_s)
        except TransportError as exc:
            error = self._named(exc)
        finally:
            self._requests.pop(req, None)
            for component in pending.waits:
                self._observer.answered((self._identity, req, component))
            if pending.future.done() and not pending.future.cancelled():
                pending.future.exception()  # retrieved: it is reported through ``error``
        record = RequestRecord(
            request=req,
            latency_s=time.perf_counter() - pending.started,
            runs=tuple(pending.runs),
            transfers=tuple(pending.transfers),
            error=None if error is None else str(error),
        )
        self._observer.add(record, self._profiled)
        if error is None:
            self._link_bytes = _bytes_per_link(pending.transfers)
        return InferResult(index, outputs, record, error)

    def _await_next(self, req: str, pending: _Pending) -> None:
        """Tell the observer which input transfers the request now waits on (docs/adapt.md,
        *In-flight evidence*), and which it no longer does."""
        due = self._expect.due(
            pending.reported,
            pending.inputs_sent_at,
            pending.input_bytes,
            self._link_bytes,
            self._observer.latency_s,
        )
        for component in pending.waits - due.keys():
            self._observer.answered((self._identity, req, component))
        for component, transfer in due.items():
            if component not in pending.waits:
                self._observer.awaiting((self._identity, req, component), transfer)
        pending.waits = set(due)

    async def _send_input(
        self, body: Mapping[str, Any], node: str, tensors: Mapping[str, np.ndarray]
    ) -> None:
        """Hand model inputs to ``node``'s agent, or to the first relay on the way to it."""
        addresses = self.deployment.addresses
        first, *rest = [*self.deployment.relays.get((self._device, node), ()), node]
        header = {**body, "sent_at": time.time(), "relay": [[n, addresses[n]] for n in rest]}
        codecs = {t: c for t, c in self.deployment.codecs.items() if t in tensors}
        message = Message("tensors", header, tensors, codecs=codecs)
        await self._endpoint.send(addresses[first], message)

    def _peer_changed(self, address: str, connected: bool) -> None:
        """Track each node's connection; when one drops, fail at once every request still
        waiting on that node (the others carry on); when it comes back, redeploy what it lacks
        (a restarted agent holds nothing)."""
        for node in [n for n, a in self.deployment.addresses.items() if a == address]:
            if self._up[node] and not connected:
                self._fail_waiting_on(node)
            if connected and not self._up[node] and self._deployed:
                self._recover(node)
            self._up[node] = connected
            self._news[node].set_result(None)
            self._news[node] = asyncio.get_running_loop().create_future()

    def _fail_waiting_on(self, node: str) -> None:
        address = self.deployment.addresses[node]
        relays = {n for via in self.deployment.relays.values() for n in via}
        for req, pending in self._requests.items():
            # A relay may carry any component's data: every request still running waits on it.
            waiting = sorted(
                c for c in pending.remaining if node in relays or self._node_of[c] == node
            )
            if waiting and not pending.future.done():
                pending.future.set_exception(
                    PeerDisconnected(
                        f"node {node!r} ({address}) disconnected while request {req} waited "
                        f"on component {waiting[0]}"
                        f"{' (it relays data of this deployment)' if node in relays else ''}: "
                        "is its agent running?",
                        peer=node,
                    )
                )

    def _recover(self, node: str) -> None:
        if node not in self._recovering:
            task = asyncio.ensure_future(self._redeploy(node))
            self._recovering[node] = task
            task.add_done_callback(lambda _: self._recovering.pop(node, None))

    async def _redeploy(self, node: str) -> None:
        """Give a node that came back the components it lacks; a failure is logged, and the
        requests that need the node then fail naming it."""
        try:
            await self._deploy(only_missing=True, nodes={node})
            event(logging.INFO, "session.recovered", node=node)
        except TransportError as exc:
            event(logging.WARNING, "session.redeploy_failed", node=node, error=str(exc))

    async def _connected(self) -> None:
        """Return once no node is known to be down and every node that came back holds its
        components again; :class:`PeerDisconnected` naming a node that does not come back
        (see :data:`RECONNECT_GRACE_S`)."""
        for node in self._up:
            if not self._up[node]:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._news[node]), RECONNECT_GRACE_S)
            if not self._up[node]:
                raise PeerDisconnected(
                    f"node {node!r} ({self.deployment.addresses[node]}) is disconnected: "
                    "is its agent running?",
                    peer=node,
                )
        for task in list(self._recovering.values()):
            await asyncio.shield(task)

    def _named(self, error: TransportError) -> TransportError:
        """``error`` with the node name for peers the transport knows only by address."""
        nodes = {a: n for n, a in self.deployment.addresses.items()}
        if error.peer in nodes:
            node = nodes[error.peer]
            return type(error)(f"node {node!r}: {error}", peer=node)
        return error

    async def _blame(self, req: str, pending: _Pending, timeout_s: float) -> PeerTimeout:
        """The timeout error, naming the node of the first unfinished component and whether
        that node still answers."""
        stuck = next(c for c in self.deployment.components if c.name in pending.remaining)
        try:
            await self._request(stuck.node, "health", {}, timeout_s=HEALTH_PROBE_S)
            state = "is alive but did not finish it"
        except TransportError:
            state = "does not answer: is its agent running?"
        return PeerTimeout(
            f"request {req} timed out after {timeout_s:g} s waiting for component "
            f"{stuck.name} on node {stuck.node!r} ({self.deployment.addresses[stuck.node]}), "
            f"which {state}",
            peer=stuck.node,
        )

    async def _receive(self, endpoint: ZmqEndpoint) -> None:
        while True:
            received = await endpoint.recv()
            if isinstance(received, Rejected):
                received = _refusal(received)
                if received is None:
                    continue  # counted by the endpoint
            try:
                self._handle(received)
            except Exception as exc:  # whatever an agent sent, the session keeps listening
                endpoint.rejected["malformed"] += 1
                event(
                    logging.WARNING,
                    "message.rejected",
                    peer=received.peer,
                    kind=received.message.kind,
                    reason="malformed",
                    detail=repr(exc),
                )

    def _handle(self, received: Received) -> None:
        message = received.message
        body = message.body
        if message.kind == "reply":
            future = self._control.get(body["cid"])
            if future is not None and not future.done():
                future.set_result(dict(body))
            return
        pending = self._requests.get(str(body["req"]))
        if pending is None or pending.future.done() or body["dep"] != self.deployment.id:
            return
        if message.kind == "error":
            # ``peer`` names the node at fault when the reporter is not (an unreachable push).
            node = str(body.get("peer", body["node"]))
            address = self.deployment.addresses.get(node, "?")
            pending.future.set_exception(_remote_error(node, address, body))
            return
        if message.kind != "done":
            raise ValueError(f"unexpected message kind {message.kind!r}")
        node = str(body["node"])
        pending.runs.append(ComponentRun(str(body["component"]), node, float(body["compute_s"])))
        for arrival in [*body["arrivals"], *body.get("hops", ())]:
            pending.transfers.append(
                Transfer(
                    str(arrival["from"]),
                    str(arrival["to"]),
                    int(arrival["bytes"]),
                    float(arrival["transfer_s"]),
                )
            )
        if message.tensors:
            pending.transfers.append(
                Transfer(
                    str(body["from"]),
                    self._device,
                    message.wire_bytes,
                    max(0.0, time.time() - float(body["sent_at"])),
                )
            )
            pending.outputs.update(message.tensors)
        pending.remaining.discard(str(body["component"]))
        pending.reported[str(body["component"])] = time.time()
        self._await_next(str(body["req"]), pending)
        if not pending.remaining:
            pending.future.set_result(
                {o: pending.outputs[o] for o in self.deployment.model_outputs}
            )


def _bytes_per_link(transfers: Iterable[Transfer]) -> dict[tuple[str, str], int]:
    total: dict[tuple[str, str], int] = {}
    for t in transfers:
        if t.source != t.target:
            total[t.source, t.target] = total.get((t.source, t.target), 0) + t.bytes
    return total


def deploy_timeout_s(control_timeout_s: float, spec: ComponentSpec) -> float:
    """How long to await an agent's answer to deploying ``spec``: the control timeout, plus the
    time its ONNX bytes and reference tensors take at :data:`DEPLOY_FLOOR_BYTES_PER_S`.

    A fixed timeout refused every large model on slow links while the agent was still receiving
    it; this one grows with what is sent and stays the control timeout for small components.
    """
    size = len(spec.onnx) + sum(value.nbytes for value in spec.reference.values())
    return control_timeout_s + size / DEPLOY_FLOOR_BYTES_PER_S


def _refusal(rejected: Rejected) -> Received | None:
    """An agent's answer that this session refused for its token, when that answer says the
    agent refused ours: the request then fails at once as "token refused" instead of timing
    out like a dead agent. Trusting such an unauthenticated message is safe: it can only turn
    a pending request into a failure, never into a result."""
    body = rejected.body
    if (
        rejected.error.reason != "unauthenticated"
        or rejected.kind not in ("reply", "error")
        or body.get("reason") != "unauthenticated"
    ):
        return None
    return Received(Message(rejected.kind, body), rejected.route, rejected.peer)


def _remote_error(node: str, address: str, answer: Mapping[str, Any]) -> RemoteError:
    """What a node's ``ok: false`` answer or ``error`` report means, naming the node."""
    if answer.get("reason") == "unauthenticated":
        return RemoteError(
            f"token refused by node {node!r} ({address}): pass the token its agent was started "
            "with (--token or $QSPLIT_TOKEN)",
            peer=node,
        )
    error = str(answer.get("error"))
    return RemoteError(error if f"'{node}'" in error else f"node {node!r}: {error}", peer=node)


def connect(
    plan: Deployment | str | Path,
    infra: Infra | str | Path,
    *,
    model: str | Path | None = None,
    token: str | None = None,
    timeout_s: float = 30.0,
    graph_optimization: str = "all",
    deploy: bool = True,
    calibration: CalibrationSource = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    preprocess: Preprocess | None = None,
    curve_key: str | Path | None = None,
    profiles: Mapping[str, ComputeProfile] | None = None,
    observer: Observer | None = None,
) -> Session:
    """A :class:`Session` for a plan file (with the ``model`` it was made for) or a
    :class:`Deployment`; components the agents lack are deployed unless ``deploy=False``.

    A model with dynamic input dimensions runs at the shapes the plan records, or, for a plan
    that records none, at ``input_shapes`` (see :func:`qsplit.runtime.load_deployment`).

    A plan's quantized blocks run in int8, calibrated on ``calibration`` (an image folder,
    default the bundled sample images, or a :class:`qsplit.quant.Calibration`), the images
    prepared by ``preprocess`` (default: the model's description file beside it, else YOLO's).
    ``profiles`` (node → the compute profile the plan was made with) give each component its
    profiled time, which emulated nodes run it in (docs/testbed.md).

    ``graph_optimization="disabled"`` runs components with ORT optimisations off, which
    reproduces an unoptimised whole-model session to the bit.

    ``curve_key`` is the requester's CURVE secret key file (the device node's pair, ``qsplit
    keys generate``): the session then reaches every agent with CURVE, and must, when the
    infrastructure gives any of them a public key.

    ``observer`` collects the live link and node estimates (:meth:`Session.observed`); pass
    one to share it between sessions, by default each has its own, seeded with ``infra``'s
    link latencies.
    """
    infra = infra if isinstance(infra, Infra) else load_infra(infra)
    curve = _curve(infra, curve_key)
    if not isinstance(plan, Deployment):
        if model is None:
            raise InputError(
                "a plan file needs the model it was made for", fix="pass model=PATH (--model)"
            )
        plan = load_deployment(
            plan,
            infra,
            model,
            calibration=calibration,
            input_shapes=input_shapes,
            preprocess=preprocess,
            profiles=profiles,
        )
    session = Session(
        plan,
        device=infra.device,
        token=token,
        timeout_s=timeout_s,
        graph_optimization=graph_optimization,
        curve=curve,
        observer=observer or Observer(infra.links),
    )
    try:
        if deploy:
            session.deploy(only_missing=True)
    except BaseException:
        session.close()
        raise
    return session


def _curve(infra: Infra, curve_key: str | Path | None) -> CurveKeys | None:
    """The requester's CURVE keys, or ``None`` when no node asks for CURVE; an agent with a
    public key and no ``curve_key`` is refused here rather than as a failed handshake later."""
    if curve_key is not None:
        return curve_keys(infra, curve_key, node=infra.device)
    keyed = [n.name for n in infra.nodes if n.curve_public_key and n.name != infra.device]
    if keyed:
        raise InputError(
            f"node(s) {', '.join(map(repr, keyed))} accept only CURVE connections (they have a "
            "curve_public_key) and no key of the requester was given",
            file=infra.source,
            fix=f"pass the secret key file of node {infra.device!r} (--curve-key "
            f"{infra.device}.key, or curve_key=), made by `qsplit keys generate {infra.device}`",
        )
    return None
