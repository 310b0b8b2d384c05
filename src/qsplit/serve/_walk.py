"""One request's walk through a deployment's components, as one coroutine for every caller on
the Ray path: a fleet's emulated devices (:mod:`qsplit.serve._devices`, in a Ray actor) and
:class:`~qsplit.serve.RaySession` (on its own event loop).

The rule is the same for both: a shared component is launched as soon as each of its inputs is
known *or on its way* (a producer's pending response is handed straight to its consumer, so
data between shared nodes never comes back to the caller, and independent branches run at
once); a device component runs once its inputs are, fetching those still pending; a shared
result is fetched at most once, and only when a device component or the model's outputs read
it. What differs between callers — how a shared component is called, how a device component
runs, what a fetch costs and how it fails — is theirs, behind :class:`Calls`.

No Ray here: a response is whatever :meth:`Calls.launch` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from qsplit.errors import InputError

Feeds = Mapping[str, np.ndarray]
Response = TypeVar("Response")


@dataclass(frozen=True)
class Step:
    """A component as the walk sees it. Built by each caller from what it holds (a device
    actor from its plain dicts, a session from its ``ComponentSpec``), never pickled."""

    name: str
    node: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    shared: bool
    """Whether it runs on a shared node (launched), not on the caller's device (run here)."""


class Calls(Protocol[Response]):
    """What a caller does at each move of the walk."""

    async def launch(self, step: Step, own: Feeds, responses: Sequence[Response]) -> Response:
        """Call a shared component with the inputs the caller holds (``own``) and the pending
        responses of its producers (each once); return its pending response."""
        ...

    async def fetch(
        self, step: Step, response: Response, wanted: tuple[str, ...]
    ) -> Mapping[str, Any]:
        """The result of ``step``'s ``response``, holding at least its outputs; ``wanted``:
        those of them the caller reads."""
        ...

    async def run(self, step: Step, feeds: Feeds) -> Feeds:
        """Run a device component on its inputs; its outputs."""
        ...


async def walk(
    steps: Sequence[Step], feeds: Feeds, outputs: Sequence[str], calls: Calls[Response]
) -> dict[str, np.ndarray]:
    """The model's ``outputs`` (in that order) for ``feeds``, walking ``steps`` (the
    deployment's components, in any order) through ``calls``."""
    known: dict[str, np.ndarray] = dict(feeds)
    pending: dict[str, tuple[Step, Response]] = {}  # tensor → its producer and its response
    fetched: set[str] = set()  # the producers whose result the caller holds
    reads = {t for s in steps if not s.shared for t in s.inputs} | set(outputs)

    async def values(tensors: Sequence[str]) -> dict[str, np.ndarray]:
        """``tensors``, fetching the pending ones' results not fetched yet, one at a time."""
        for tensor in tensors:
            if tensor in known or tensor not in pending or pending[tensor][0].name in fetched:
                continue
            step, response = pending[tensor]
            fetched.add(step.name)
            wanted = tuple(t for t in step.outputs if t in reads)
            result = await calls.fetch(step, response, wanted)
            known.update({t: result[t] for t in step.outputs})
        if unknown := [t for t in tensors if t not in known]:
            raise InputError(
                f"model outputs {unknown} are produced by no component",
                field="outputs",
                fix="check the deployment's model outputs",
            )
        return {t: known[t] for t in tensors}

    waiting = list(steps)
    while waiting:
        ready = [s for s in waiting if all(t in known or t in pending for t in s.inputs)]
        if not ready:
            raise InputError(
                f"component {waiting[0].name!r} reads a tensor nothing produces",
                field="feeds",
                fix="pass every model input the deployment names",
            )
        # Shared components first: they run elsewhere while this caller waits or computes.
        step = next((s for s in ready if s.shared), ready[0])
        waiting.remove(step)
        if not step.shared:
            known.update(await calls.run(step, await values(step.inputs)))
            continue
        # What a shared node produced goes on from there, even once the caller fetched it too.
        own = {t: known[t] for t in step.inputs if t not in pending}
        producers = dict(pending[t] for t in step.inputs if t in pending)  # each producer once
        response = await calls.launch(step, own, list(producers.values()))
        pending.update(dict.fromkeys(step.outputs, (step, response)))
    return await values(outputs)
