"""Structured log lines: one event per line, ``event key=value …``, so that a rejected message,
a failed handler or a dead task can be found and counted in an agent's log with grep.

Agents log to stderr (the testbed sends it to ``<state dir>/<node>.log``). Values are quoted
when they contain spaces; bytes (a peer's routing id) are shown as text where printable, else
in hex.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("qsplit.runtime")
MAX_VALUE_CHARS = 400
"""Longest value logged: a peer's fields are cut there (the watchdog logs a stack on its own
lines, whole)."""


def event(level: int, name: str, **fields: Any) -> None:
    """Log ``name`` with ``fields`` as ``key=value`` pairs."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s %s", name, " ".join(f"{k}={_show(v)}" for k, v in fields.items()))


def _show(value: Any) -> str:
    if isinstance(value, bytes):  # a routing id: a session's is text, zmq's own are binary
        value = value.decode() if value.isascii() and value.decode().isprintable() else value.hex()
    text = str(value).replace("\n", " ")
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}…"
    return f'"{text}"' if (" " in text or not text) else text


def configure() -> None:
    """Send the runtime's events to stderr with a timestamp (the agent command calls this)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def watch(task: asyncio.Task[Any], what: str, on_death: Callable[[], None] | None = None) -> None:
    """Log (and report to ``on_death``) ``task`` ending with an exception: a background task
    that dies must not do so silently."""

    def done(task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        logger.error(
            "task.died task=%s error=%s",
            what,
            _show(f"{type(exc).__name__}: {exc}"),
            exc_info=exc,
        )
        if on_death is not None:
            on_death()

    task.add_done_callback(done)
