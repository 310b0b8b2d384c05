"""The supervisor's control channel: change a running testbed's links and nodes.

A :class:`ControlServer` listens on loopback beside the link emulators. Each request is one
JSON object in a length-prefixed frame (:mod:`qsplit.testbed._frames`) carrying ``token`` (the
secret the supervisor wrote into its owner-only state file: only whoever may read the state
file, i.e. ``down`` the testbed, may change it), ``op`` and the op's fields; the answer is one
JSON object, ``{"ok": true, ...}`` or ``{"ok": false, "error": …, "field": …, "fix": …}``.

Nothing a request carries can stop the server: oversized frames, bad JSON, a wrong token, an
unknown op and a handler's failure are all answered (a frame too large closes that connection
only), and every connection has its own thread.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

from qsplit.errors import InputError, QsplitError, TransportError
from qsplit.testbed._frames import FrameReader, FrameServer, FrameTooLarge, send_frame

MAX_REQUEST_BYTES = 64 << 10
"""A control request is a few fields; a larger frame is refused before it is read."""

Handler = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""Carries out one op: returns the fields of its answer, raises :class:`InputError` for a
request it refuses and another :class:`QsplitError` for one it could not carry out."""

_log = logging.getLogger("qsplit.testbed")


class ControlServer(FrameServer):
    """Answers control requests on a loopback port until closed; ``handlers`` by op name."""

    max_frame_bytes = MAX_REQUEST_BYTES

    def __init__(self, handlers: Mapping[str, Handler], token: str, host: str = "127.0.0.1"):
        self._handlers, self._token = handlers, token
        super().__init__(host)

    def reply(self, frame: memoryview) -> bytes:
        return json.dumps(self.answer(bytes(frame))).encode()

    def oversized(self, error: FrameTooLarge) -> bytes:
        return json.dumps(_refusal(f"request refused: {error}", "malformed")).encode()

    def answer(self, frame: bytes) -> dict[str, Any]:
        """The answer to one request frame (public so tests can drive it without sockets)."""
        try:
            request = json.loads(frame)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _refusal(f"a control request must be a JSON object: {exc}", "malformed")
        if not isinstance(request, dict):
            return _refusal("a control request must be a JSON object", "malformed")
        token = request.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode(), self._token.encode()
        ):
            return _refusal(
                "control request refused: wrong or missing token",
                "unauthenticated",
                fix="take the token from the running testbed's state file (Testbed.find)",
            )
        op = request.get("op")
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            return _refusal(
                f"unknown control op {op!r}",
                "malformed",
                field="op",
                fix=f"use one of {', '.join(sorted(self._handlers))}",
            )
        try:
            return {"ok": True, **handler(request)}
        except InputError as exc:
            return _refusal(exc.problem, "refused", field=exc.field, fix=exc.fix)
        except QsplitError as exc:  # accepted, but what it acts on failed (an agent's answer)
            return _refusal(str(exc), "failed")
        except Exception as exc:  # a bug below must not take the testbed down with it
            _log.exception("control op %s failed", op)
            return _refusal(f"control op {op!r} failed in the supervisor: {exc!r}", "failed")


def control_request(
    address: str, token: str, op: str, fields: Mapping[str, Any], timeout_s: float
) -> dict[str, Any]:
    """Send one request to the control server at ``address``; its answer (ok or not).
    :class:`TransportError` when the server cannot be reached or does not answer."""
    host, _, port = address.rpartition(":")
    payload = json.dumps({**fields, "op": op, "token": token}).encode()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            send_frame(sock, payload)
            frame = FrameReader(sock).read()
    except OSError as exc:
        raise TransportError(f"testbed control channel at {address}: {exc}") from exc
    if frame is None:
        raise TransportError(f"testbed control channel at {address} closed without answering")
    return dict(json.loads(bytes(frame)))


def _refusal(
    error: str, reason: str, *, field: str | None = None, fix: str | None = None
) -> dict[str, Any]:
    return {"ok": False, "error": error, "reason": reason, "field": field, "fix": fix}
