"""A device class of a fleet as one Ray actor: every emulated device of the class is a set of
asyncio tasks in it, issuing Poisson requests open-loop and walking each through its class's
components — its own ones run here, padded to the class's speed, the shared ones called
through Serve handles.

Everything the actor receives and returns is plain (dicts, lists, numbers, numpy arrays,
ONNX bytes): no qsplit object is pickled. Imported only once Ray is known to be there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import ray
from ray import serve

from qsplit.serve._emulation import LINKS, TRACE, next_arrival, route_s, tensor_bytes
from qsplit.serve._runner import ComponentRunner

Feeds = dict[str, np.ndarray]


class _Device:
    """One emulated device: its compute (one run at a time), its own uplink and downlink (one
    transfer at a time each), and its requests."""

    def __init__(self, owner: DeviceClassActor, number: int) -> None:
        self.owner, self.number = owner, number
        self.compute = asyncio.Lock()
        self.uplink = asyncio.Lock()
        self.downlink = asyncio.Lock()
        self.arrivals: asyncio.Task[None] | None = None
        self.requests: list[asyncio.Task[None]] = []

    async def issue(self, start: float, seed: Sequence[int]) -> None:
        """Send requests at Poisson arrivals from ``start`` (epoch s) until cancelled."""
        rng = np.random.default_rng([*seed, self.number])
        owner, at, index = self.owner, start, 0
        while True:
            at = next_arrival(owner.rate_hz, at, rng)
            await asyncio.sleep(max(0.0, at - time.time()))
            feeds = owner.inputs[index % len(owner.inputs)]
            self.requests.append(asyncio.create_task(self.request(index, at, feeds)))
            index += 1

    async def request(self, index: int, sent: float, feeds: Feeds) -> None:
        record: dict[str, Any] = {"device": self.number, "index": index, "sent": sent}
        try:
            _, trace = await self.walk(feeds)
            record.update(done=time.time(), error=None, trace=trace)
        except Exception as exc:  # a replica's or Ray's error, recorded as the request's
            record.update(done=None, error=f"{type(exc).__name__}: {exc}"[:500], trace=[])
        self.owner.records.append(record)

    async def walk(self, feeds: Feeds) -> tuple[Feeds, list[dict[str, Any]]]:
        """The model's outputs for ``feeds`` and the request's trace through the shared
        replicas. A shared component is called as soon as its inputs are known or on their way
        (Ray hands a producer's response to its consumer); the device fetches only what it
        runs on, and the model outputs."""
        owner = self.owner
        known: Feeds = dict(feeds)
        pending: dict[str, tuple[Any, str]] = {}  # tensor → (response, producing node)
        fetched: dict[int, dict[str, Any]] = {}
        waiting = list(owner.components)
        while waiting:
            launch = next((c for c in waiting if c["app"] and _ready(c, known, pending)), None)
            if launch is not None:
                await self.launch(launch, known, pending)
                waiting.remove(launch)
                continue
            local = next((c for c in waiting if _ready(c, known, pending)), None)
            if local is None:
                if waiting:
                    raise RuntimeError(f"component {waiting[0]['name']!r} reads an unknown tensor")
                break
            for tensor in local["inputs"]:
                if tensor not in known:
                    known.update(await self.fetch(pending[tensor], fetched, local["inputs"]))
            known.update(await self.run(local, {t: known[t] for t in local["inputs"]}))
            waiting.remove(local)
        for tensor in owner.model_outputs:
            if tensor not in known:
                known.update(await self.fetch(pending[tensor], fetched, owner.model_outputs))
        trace = {
            k: v for result in fetched.values() for k, v in result.items() if k.startswith(TRACE)
        }
        return {t: known[t] for t in owner.model_outputs}, list(trace.values())

    async def launch(self, c: Mapping[str, Any], known: Feeds, pending: dict[str, Any]) -> None:
        # What a shared node produced goes on from there, even once the device fetched it too.
        own = {t: known[t] for t in c["inputs"] if t not in pending}
        if own:
            await self.send(self.uplink, c["uplink"], tensor_bytes(own, list(own)), first=True)
        responses = {id(r): r for t in c["inputs"] if t in pending for r, _ in [pending[t]]}
        response = self.owner.handles[c["app"]].remote(
            c["key"], *responses.values(), own, {LINKS: c["links"]}
        )
        for tensor in c["outputs"]:
            pending[tensor] = (response, c["node"])

    async def fetch(
        self, entry: tuple[Any, str], fetched: dict[int, dict[str, Any]], wanted: Sequence[str]
    ) -> dict[str, Any]:
        """A shared component's result, once its tensors the device reads crossed the
        downlink."""
        response, node = entry
        key = id(response)
        if key not in fetched:
            result = await response
            fetched[key] = result
            size = tensor_bytes(result, [t for t in wanted if t in result])
            await self.send(self.downlink, self.owner.downlinks[node], size, first=False)
        return {k: v for k, v in fetched[key].items() if not k.startswith(TRACE)}

    async def send(
        self, link: asyncio.Lock, hops: Sequence[Sequence[float]], size: int, *, first: bool
    ) -> None:
        """Emulate a transfer over a route whose device end (the first hop up, the last hop
        down) is this device's own link: its bytes go one transfer at a time; latencies and the
        shared nodes' hops overlap freely."""
        own = hops[0] if first else hops[-1]
        async with link:
            await asyncio.sleep(size / own[1])
        rest = hops[1:] if first else hops[:-1]
        await asyncio.sleep(own[0] + route_s(rest, size))

    async def run(self, c: Mapping[str, Any], feeds: Feeds) -> dict[str, np.ndarray]:
        """A device component, padded to the class's time for it; one at a time per device."""
        async with self.compute:
            started = time.time()
            outputs = await asyncio.to_thread(self.owner.runners[c["name"]].run, feeds)
            ran_s = time.time() - started
            overrun = ran_s > c["compute_s"]
            if not overrun:
                await asyncio.sleep(c["compute_s"] - ran_s)
            self.owner.runs.append((started, overrun))
        return outputs


def _ready(c: Mapping[str, Any], known: Feeds, pending: Mapping[str, Any]) -> bool:
    return all(t in known or t in pending for t in c["inputs"])


@ray.remote(num_cpus=0)
class DeviceClassActor:
    """All emulated devices of one class.

    ``components`` lists the class's components in topological order as dicts: ``name``,
    ``node``, ``inputs``, ``outputs``, and either ``onnx`` and ``compute_s`` (a device
    component) or ``app`` and ``key`` (the Serve application of its node, and the component's
    name there), ``uplink`` (the route from the device, as ``[[latency_s, bandwidth], ...]``)
    and ``links`` (:data:`LINKS`).
    ``downlinks``: shared node → route to the device."""

    def __init__(
        self,
        components: Sequence[Mapping[str, Any]],
        model_outputs: Sequence[str],
        downlinks: Mapping[str, Sequence[Sequence[float]]],
        inputs: Sequence[Feeds],
        rate_hz: float,
        seed: Sequence[int],
        threads: int,
        optimize: bool,
    ) -> None:
        self.components = [dict(c) for c in components]
        self.model_outputs = tuple(model_outputs)
        self.downlinks = dict(downlinks)
        self.inputs = list(inputs)
        self.rate_hz, self.seed = rate_hz, tuple(seed)
        self.runners = {
            c["name"]: ComponentRunner(c["onnx"], c["outputs"], threads=threads, optimize=optimize)
            for c in components
            if not c["app"]
        }
        # The nodes' applications may still be deploying (the actor starts alongside them): a
        # handle to the node's deployment (named after the node) needs no check that it exists.
        self.handles = {
            c["app"]: serve.get_deployment_handle(c["node"], c["app"], _check_exists=False)
            for c in components
            if c["app"]
        }
        self.devices: list[_Device] = []
        self.records: list[dict[str, Any]] = []
        self.runs: list[tuple[float, bool]] = []

    async def add(self, count: int, start: float) -> list[int]:
        """Start ``count`` more devices issuing requests from ``start`` (epoch s; now if past)."""
        numbers = []
        for _ in range(count):
            device = _Device(self, len(self.devices))
            device.arrivals = asyncio.create_task(device.issue(max(start, time.time()), self.seed))
            self.devices.append(device)
            numbers.append(device.number)
        return numbers

    async def remove(self, count: int) -> list[int]:
        """Stop the ``count`` most recently started active devices issuing requests (their
        requests in flight complete)."""
        active = [d for d in self.devices if d.arrivals is not None and not d.arrivals.done()]
        stopped = active[len(active) - count :] if count else []
        for device in stopped:
            assert device.arrivals is not None
            device.arrivals.cancel()
        return [d.number for d in stopped]

    async def infer(self, feeds: Feeds) -> Feeds:
        """One request's outputs, through an extra device (not part of any measurement)."""
        outputs, _ = await _Device(self, -1).walk(feeds)
        return outputs

    async def finish(self) -> dict[str, Any]:
        """Stop every device, wait for the requests in flight, and hand over what happened."""
        crashed = [
            f"device {d.number}: {d.arrivals.exception()!r}"
            for d in self.devices
            if d.arrivals is not None and d.arrivals.done() and not d.arrivals.cancelled()
        ]
        await self.remove(len(self.devices))
        for device in self.devices:
            await asyncio.gather(*device.requests, return_exceptions=True)
        return {"requests": self.records, "runs": self.runs, "crashed": crashed}
