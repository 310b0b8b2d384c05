"""The walk of a deployment's components (serve/_walk.py) without Ray: what it launches before
it fetches, what it fetches, the errors it raises; and RaySession's loop, calls and stream over
shared components served in this process the way Serve handles call them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import synthetic
from conftest import random_feeds, session
from qsplit.errors import InputError, TransportError
from qsplit.infra import load_infra
from qsplit.model import analyze
from qsplit.runtime import Deployment, build_deployment
from qsplit.serve._ray import Connection
from qsplit.serve._runner import ComponentRunner
from qsplit.serve._session import RaySession, _Calls
from qsplit.serve._walk import Feeds, Step, walk
from served import THREE_TIER

# x → stem (device) → s; side (device): x → d; left (edge): s → l, l2; right (cloud): s → r;
# join (cloud): l, r → j; head (device): j, l2, d → out. The model's outputs: out and r.
DAG = (
    Step("stem", "device", ("x",), ("s",), shared=False),
    Step("side", "device", ("x",), ("d",), shared=False),
    Step("left", "edge", ("s",), ("l", "l2"), shared=True),
    Step("right", "cloud", ("s",), ("r",), shared=True),
    Step("join", "cloud", ("l", "r"), ("j",), shared=True),
    Step("head", "device", ("j", "l2", "d"), ("out",), shared=False),
)
OUTPUTS = ("out", "r")


def compute(step: Step, feeds: Feeds) -> dict[str, np.ndarray]:
    """Each output of a step: the sum of its inputs, plus its position."""
    total = sum(feeds[t] for t in step.inputs)
    return {t: total + i + 1 for i, t in enumerate(step.outputs)}


def direct(steps: Sequence[Step], feeds: Feeds, outputs: Sequence[str]) -> dict[str, Any]:
    """The outputs computed step by step, without any walk."""
    known = dict(feeds)
    for step in steps:
        known.update(compute(step, known))
    return {t: known[t] for t in outputs}


@dataclass
class Call:
    """A fake response: the step it calls and what it was given."""

    step: Step
    own: Feeds
    producers: Sequence[Call]

    def result(self) -> dict[str, np.ndarray]:
        feeds = dict(self.own)
        for producer in self.producers:
            feeds.update(producer.result())
        return compute(self.step, feeds)


class Recorder:
    """Calls that record every move of the walk; ``failing`` names a step whose fetch raises."""

    def __init__(self, failing: str | None = None) -> None:
        self.moves: list[tuple[Any, ...]] = []
        self.failing = failing

    async def launch(self, step: Step, own: Feeds, responses: Sequence[Call]) -> Call:
        self.moves.append(("launch", step.name, tuple(own), tuple(r.step.name for r in responses)))
        return Call(step, own, responses)

    async def fetch(self, step: Step, response: Call, wanted: tuple[str, ...]) -> Mapping[str, Any]:
        self.moves.append(("fetch", step.name, wanted))
        if step.name == self.failing:
            raise RuntimeError(f"{step.name} on {step.node} died")
        return response.result()

    async def run(self, step: Step, feeds: Feeds) -> Feeds:
        self.moves.append(("run", step.name, tuple(feeds)))
        return compute(step, feeds)


def walked(steps: Sequence[Step], outputs: Sequence[str], calls: Recorder) -> dict[str, Any]:
    return asyncio.run(walk(steps, {"x": np.float64(1.0)}, outputs, calls))


def test_shared_components_launch_as_soon_as_their_inputs_are_known_or_pending() -> None:
    calls = Recorder()
    outputs = walked(DAG, OUTPUTS, calls)
    assert list(outputs) == list(OUTPUTS)
    assert outputs == direct(DAG, {"x": np.float64(1.0)}, OUTPUTS)
    assert calls.moves == [
        ("run", "stem", ("x",)),
        # Both branches are in flight before either is fetched, and join gets their responses.
        ("launch", "left", ("s",), ()),
        ("launch", "right", ("s",), ()),
        ("launch", "join", (), ("left", "right")),
        # The device computes while the shared nodes do.
        ("run", "side", ("x",)),
        # head reads j and l2: each producer fetched once, for what the device reads of it.
        ("fetch", "join", ("j",)),
        ("fetch", "left", ("l2",)),
        ("run", "head", ("j", "l2", "d")),
        ("fetch", "right", ("r",)),
    ]


@pytest.mark.parametrize("order", [(5, 4, 3, 2, 1, 0), (1, 0, 5, 3, 4, 2)])
def test_the_walk_follows_the_data_not_the_order_of_the_steps(order: tuple[int, ...]) -> None:
    calls = Recorder()
    outputs = walked([DAG[i] for i in order], OUTPUTS, calls)
    assert outputs == direct(DAG, {"x": np.float64(1.0)}, OUTPUTS)
    launched = [m[1] for m in calls.moves if m[0] == "launch"]
    first_fetch = next(i for i, m in enumerate(calls.moves) if m[0] == "fetch")
    assert sorted(launched) == ["join", "left", "right"]
    assert all(m[0] != "launch" for m in calls.moves[first_fetch:])


def test_only_what_the_device_reads_is_fetched() -> None:
    """A chain of shared components: their data stays among them; the caller fetches the last
    one's result only, and an output the device never reads is not wanted."""
    chain = (
        Step("edge", "edge", ("x",), ("e",), shared=True),
        Step("cloud", "cloud", ("e",), ("c", "unread"), shared=True),
    )
    calls = Recorder()
    assert walked(chain, ("c",), calls) == direct(chain, {"x": np.float64(1.0)}, ("c",))
    assert calls.moves == [
        ("launch", "edge", ("x",), ()),
        ("launch", "cloud", (), ("edge",)),
        ("fetch", "cloud", ("c",)),
    ]


def test_a_tensor_nothing_produces_is_an_input_error() -> None:
    reads_a_ghost = (*DAG[:5], Step("head", "device", ("j", "ghost"), ("out",), shared=False))
    with pytest.raises(InputError, match="component 'head' reads a tensor nothing produces"):
        walked(reads_a_ghost, OUTPUTS, Recorder())
    with pytest.raises(InputError, match=r"model outputs \[.ghost.\] are produced by no component"):
        walked(DAG, ("out", "ghost"), Recorder())


def test_a_failing_fetch_stops_the_walk_with_its_error() -> None:
    calls = Recorder(failing="left")
    with pytest.raises(RuntimeError, match="left on edge died"):
        walked(DAG, OUTPUTS, calls)
    assert calls.moves[-1] == ("fetch", "left", ("l2",))  # head never ran


async def _raises(error: Exception) -> Mapping[str, Any]:
    raise error


def test_the_session_names_the_component_and_node_of_a_failed_fetch() -> None:
    step = DAG[3]
    calls = _Calls({}, {}, timeout_s=5.0)
    response = _raises(RuntimeError("replica crashed\ntraceback follows"))
    with pytest.raises(TransportError) as failed:
        asyncio.run(calls.fetch(step, response, ("r",)))
    assert str(failed.value) == (
        "component 'right' on node 'cloud' failed: RuntimeError: replica crashed"
    )
    assert failed.value.peer == "cloud"


class WrappedError(Exception):
    """As Ray's RayTaskError: a replica's exception, held as ``cause``."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"ray::ServeReplica (pid=1)\n{cause}")
        self.cause = cause


def test_the_session_reports_a_replica_s_own_error_not_ray_s_wrapper() -> None:
    response = _raises(WrappedError(ValueError("index 16 out of bounds")))
    with pytest.raises(TransportError) as failed:
        asyncio.run(_Calls({}, {}, timeout_s=5.0).fetch(DAG[2], response, ("l2",)))
    assert str(failed.value) == (
        "component 'left' on node 'edge' failed: ValueError: index 16 out of bounds"
    )


def test_the_session_names_a_component_that_does_not_answer_in_time() -> None:
    async def fetch_never_answered() -> Mapping[str, Any]:
        never = asyncio.get_running_loop().create_future()
        return await _Calls({}, {}, timeout_s=0.01).fetch(DAG[2], never, ("l2",))

    with pytest.raises(TransportError) as failed:
        asyncio.run(fetch_never_answered())
    assert str(failed.value) == (
        "component 'left' on node 'edge' failed: TimeoutError: no answer within 0.01 s"
    )


class InProcessHandle:
    """A shared component served in this process as a Serve handle calls it: the responses
    passed in are awaited (Ray resolves them replica to replica), and a call's response is
    awaitable. ``gate``: calls wait until that many are in flight at once."""

    def __init__(
        self, runner: ComponentRunner, inputs: Sequence[str], *, gate: int = 0, fails: bool = False
    ) -> None:
        self.runner, self.inputs, self.fails = runner, frozenset(inputs), fails
        self.gate, self.active, self.peak = gate, 0, 0
        self.opened: asyncio.Event | None = None

    def remote(self, *parts: Any) -> asyncio.Task[dict[str, np.ndarray]]:
        return asyncio.ensure_future(self.call(parts))

    async def call(self, parts: Sequence[Any]) -> dict[str, np.ndarray]:
        resolved = [await p if isinstance(p, asyncio.Future) else p for p in parts]
        feeds = {k: v for part in resolved for k, v in part.items() if k in self.inputs}
        self.opened = self.opened or asyncio.Event()
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.active >= self.gate:
                self.opened.set()
            await self.opened.wait()
            if self.fails:
                raise RuntimeError("replica died")
            return await asyncio.to_thread(self.runner.run, feeds)
        finally:
            self.active -= 1


@pytest.fixture(scope="module")
def branchy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Deployment]:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path_factory.mktemp("m") / "branchy.onnx")
    _, graph = analyze(str(path))
    tiers = {"stem": "device", "body": "edge"}
    assignment = {b: tiers.get(b.split("/")[0], "cloud") for b in graph.block_names}
    return path, build_deployment(path, assignment, load_infra(THREE_TIER), agents=False)


def in_process_session(
    deployment: Deployment, *, gate: int = 0, failing: str | None = None
) -> tuple[RaySession, dict[str, InProcessHandle]]:
    def runner(c: Any) -> ComponentRunner:
        return ComponentRunner(c.onnx, c.outputs, threads=1, optimize=False)

    handles = {
        c.name: InProcessHandle(runner(c), c.inputs, gate=gate, fails=c.node == failing)
        for c in deployment.components
        if c.node != "device"
    }
    local = {c.name: runner(c) for c in deployment.components if c.node == "device"}
    served = RaySession(
        deployment,
        "device",
        handles,
        local,
        applications=(),
        connection=Connection.ATTACHED,
        timeout_s=30.0,
        holder="test",
    )
    return served, handles


# Closing a session asks Serve (imported, not started) to delete its applications.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_session_streams_in_order_with_its_requests_in_flight_together(
    branchy: tuple[Path, Deployment],
) -> None:
    pytest.importorskip("ray")
    path, deployment = branchy
    model, _ = analyze(str(path))
    whole = session(model.proto)
    requests = [random_feeds(model.proto, seed) for seed in range(7)]
    served, handles = in_process_session(deployment, gate=3)
    with served:
        results = list(served.stream(requests, max_in_flight=3))
        assert served.infer(requests[0]).keys() == set(deployment.model_outputs)
    assert [r.index for r in results] == list(range(7))
    for feeds, result in zip(requests, results, strict=True):
        assert result.error is None and result.outputs is not None
        assert list(result.outputs) == list(deployment.model_outputs)
        for name, want in zip(deployment.model_outputs, whole.run(None, feeds), strict=True):
            np.testing.assert_allclose(result.outputs[name], want, atol=1e-5, rtol=0)
    # Every shared component had three requests in flight at once (its gate), never four.
    assert {name: h.peak for name, h in handles.items()} == {name: 3 for name in handles}
    assert not any(t.name == "qsplit-ray-session" for t in threading.enumerate())
    with pytest.raises(TransportError, match="the session is closed"):
        served.infer(requests[0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_session_reports_a_failing_node_per_request(branchy: tuple[Path, Deployment]) -> None:
    pytest.importorskip("ray")
    path, deployment = branchy
    model, _ = analyze(str(path))
    feeds = random_feeds(model.proto, 0)
    served, _ = in_process_session(deployment, failing="cloud")
    with served:
        with pytest.raises(TransportError, match="on node 'cloud' failed: RuntimeError: replica"):
            served.infer(feeds)
        (result,) = served.stream([feeds])
    assert result.outputs is None and isinstance(result.error, TransportError)
    assert result.record.error == str(result.error)
