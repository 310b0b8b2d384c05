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
from qsplit.serve._walk import Feeds, Step, walk


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
        replicas (:func:`~qsplit.serve._walk.walk`, with this device's links and compute)."""
        calls = _Calls(self)
        outputs = await walk(self.owner.steps, feeds, self.owner.model_outputs, calls)
        return outputs, list(calls.trace.values())

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


class _Calls:
    """How one request of a device walks: shared components through the Serve handles, after
    their uploads over the device's uplink; results downloaded over its downlink, their trace
    kept; device components padded to the class's time."""

    def __init__(self, device: _Device) -> None:
        self.device, self.owner = device, device.owner
        self.trace: dict[str, Any] = {}

    async def launch(self, step: Step, own: Feeds, responses: Sequence[Any]) -> Any:
        c = self.owner.components[step.name]
        if own:
            size = tensor_bytes(own, list(own))
            await self.device.send(self.device.uplink, c["uplink"], size, first=True)
        return self.owner.handles[c["app"]].remote(c["key"], *responses, own, {LINKS: c["links"]})

    async def fetch(self, step: Step, response: Any, wanted: tuple[str, ...]) -> Mapping[str, Any]:
        """A shared component's result, once the tensors the device reads crossed the
        downlink."""
        result: Mapping[str, Any] = await response
        downlink = self.owner.downlinks[step.node]
        await self.device.send(
            self.device.downlink, downlink, tensor_bytes(result, wanted), first=False
        )
        self.trace.update({k: v for k, v in result.items() if k.startswith(TRACE)})
        return result

    async def run(self, step: Step, feeds: Feeds) -> Feeds:
        """A device component, padded to the class's time for it; one at a time per device."""
        compute_s = self.owner.components[step.name]["compute_s"]
        async with self.device.compute:
            started = time.time()
            outputs = await asyncio.to_thread(self.owner.runners[step.name].run, feeds)
            ran_s = time.time() - started
            overrun = ran_s > compute_s
            if not overrun:
                await asyncio.sleep(compute_s - ran_s)
            self.owner.runs.append((started, overrun))
        return outputs


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
        self.components = {c["name"]: dict(c) for c in components}
        self.steps = [
            Step(c["name"], c["node"], tuple(c["inputs"]), tuple(c["outputs"]), bool(c["app"]))
            for c in components
        ]
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
