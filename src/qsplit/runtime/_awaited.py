"""What a request in flight is waiting for: the transfers an unanswered component needs.

A component on node ``B`` whose inputs from outside ``B`` all come over one direct link
``A → B`` (model inputs from the requester, or outputs of components on ``A``) can only report
once those bytes have crossed, it has run, and its report has come back. So once every one of
those inputs has been sent (the requester sent the model inputs, the producers on ``A``
reported), the wait for its report bounds the link's bandwidth (:class:`Awaited`). Its compute
is allowed :data:`SLACK_FACTOR` × its profiled time, so a node slower than its profile is not
mistaken for a slow link; a component without a profiled time, or with inputs from several
nodes or through relays, gives no bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from qsplit.runtime._deployment import Deployment
from qsplit.runtime._observe import Awaited

SLACK_FACTOR = 2.0
"""Compute time allowed to a component, × its profiled time, before its silence counts against
the link it waits on."""


@dataclass(frozen=True)
class _Entry:
    """A component that can bound its input link."""

    node: str
    source: str
    """The one node its outside inputs come from (the requester's device for model inputs)."""
    model_inputs: tuple[str, ...]
    producers: tuple[str, ...]
    """Components on ``source`` whose outputs it reads."""
    compute_s: float


class Expectations:
    """For one deployment: which components bound which link, and when they are due."""

    def __init__(self, deployment: Deployment, device: str) -> None:
        producer = {t: c for c in deployment.components for t in c.outputs}
        self._entries: dict[str, _Entry] = {}
        for c in deployment.components:
            outside = [
                t for t in c.inputs if t in deployment.model_inputs or producer[t].node != c.node
            ]
            sources = {
                device if t in deployment.model_inputs else producer[t].node for t in outside
            }
            if c.compute_s is None or len(sources) != 1:
                continue
            (source,) = sources
            if source == c.node or (source, c.node) in deployment.relays:
                continue
            self._entries[c.name] = _Entry(
                node=c.node,
                source=source,
                model_inputs=tuple(t for t in outside if t in deployment.model_inputs),
                producers=tuple(dict.fromkeys(producer[t].name for t in outside if t in producer)),
                compute_s=c.compute_s,
            )
        self._device = device

    def due(
        self,
        reported: Mapping[str, float],
        inputs_sent_at: float | None,
        input_bytes: Mapping[str, int],
        link_bytes: Mapping[tuple[str, str], int],
        latency_s: Callable[[str, str], float],
    ) -> dict[str, Awaited]:
        """Component → the transfer its report waits for, for every unreported component whose
        outside inputs have all been sent. ``reported``: component → ``time.time()`` its report
        came; ``input_bytes``: model input → bytes sent; ``link_bytes``: (source, target) →
        bytes a finished request of this deployment sent over that link in all (needed for
        inputs from other components, whose sizes only a finished run tells).

        The bytes used are never fewer than what the component needs (a request's total over
        the link, uncompressed model inputs): fewer would claim a bound the wait does not
        prove; more only loosens it."""
        waits = {}
        for name, entry in self._entries.items():
            if name in reported or any(p not in reported for p in entry.producers):
                continue
            if entry.model_inputs and inputs_sent_at is None:
                continue
            sent = [reported[p] for p in entry.producers]
            if entry.model_inputs:
                assert inputs_sent_at is not None
                sent.append(inputs_sent_at)
            size = sum(input_bytes.get(t, 0) for t in entry.model_inputs)
            if entry.producers:
                link = (entry.source, entry.node)
                if link not in link_bytes:
                    continue
                size = max(size, link_bytes[link])
            if size <= 0:
                continue
            slack_s = (
                SLACK_FACTOR * entry.compute_s
                + latency_s(entry.source, entry.node)
                + latency_s(entry.node, self._device)
            )
            waits[name] = Awaited(entry.source, entry.node, size, max(sent), slack_s)
        return waits
