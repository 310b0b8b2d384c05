"""Runtime errors, all below :class:`qsplit.errors.TransportError` so that callers catch one type.

::

    TransportError (qsplit.errors)  a peer unreachable, crashed, timed out or misbehaving
    ├── ProtocolError               a message that breaks the wire format (reason: counter key)
    ├── PeerTimeout                 a node did not answer or finish within the timeout
    ├── PeerDisconnected            a node's connection dropped (process died, heartbeats lost)
    └── RemoteError                 a node reported a failure (bad deploy, component crashed)

Every error names the node (``peer``) it is about, because "request failed" is useless on a
three-machine deployment and "node 'edge' is not answering" is what the user has to act on.
"""

from __future__ import annotations

from qsplit.errors import TransportError


class ProtocolError(TransportError):
    """A message was rejected; ``reason`` is one of :data:`qsplit.runtime._wire.REASONS`."""

    def __init__(self, reason: str, detail: str, *, peer: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"{reason} message: {detail}", peer=peer)


class PeerTimeout(TransportError):
    """A node did not answer (control) or did not finish its part of a request in time."""


class PeerDisconnected(TransportError):
    """A node's connection dropped while a request needed it, or it is not back in time."""


class RemoteError(TransportError):
    """A node reported that it could not do what was asked."""
