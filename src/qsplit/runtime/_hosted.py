"""Components an agent hands to another engine instead of its own ONNX Runtime.

A device that cannot run Ray still speaks qsplit's agent protocol; the shared nodes it
offloads to may be a Ray Serve cluster. The bridge is a *gateway*: an ordinary agent on the
cluster's side whose components are hosted elsewhere (``qsplit agent --backend ray``,
:class:`qsplit.serve.ServeHost`). Routing, relays, reports, security and limits stay the agent's;
only "run this component on these tensors" changes hands. The runtime defines the interface
and never imports the engine behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np


class HostedComponent(Protocol):
    """One deployed component, as its engine runs it."""

    def run(self, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """Its outputs for ``feeds`` (blocking: agents call it from their component threads,
        so concurrent requests reach the engine together and may batch there)."""
        ...


class ComponentHost(Protocol):
    """An engine that runs an agent's components."""

    def load(
        self,
        name: str,
        onnx_bytes: bytes,
        sha256: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        optimize: bool,
    ) -> HostedComponent:
        """Deploy a component (blocking; may take seconds). Components with the same bytes,
        deployed by several requesters, may share one deployment."""
        ...

    def release(self, component: HostedComponent) -> None:
        """The agent no longer runs ``component`` (its deployment was undeployed)."""
        ...

    def close(self) -> None:
        """Release everything; the agent is stopping."""
        ...
