"""How late an agent's event loop runs, seen from inside (``health``) and from outside (a thread).

A loop that is blocked (a synchronous call that never returns, a livelock) cannot answer
``health`` at all, so the agent needs two views: the :meth:`Watchdog.beat` coroutine wakes every
:data:`HEARTBEAT_S` and records how late it woke, which ``health`` reports (``loop_lag_s``, the
worst lag of the last :data:`WINDOW_S`) together with a ``state``; and a watchdog thread, which
runs even while the loop does not, logs ``loop.stuck`` with the loop thread's stack once the
heartbeat is :data:`STUCK_S` old (or ``process.paused`` when it was stopped itself: a frozen
process is not a blocked loop, though ``health`` then reports the lag all the same). From
outside, a process that listens but does not answer ``health`` is *deaf* (``qsplit testbed
status``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

from qsplit.runtime._log import event, logger

HEARTBEAT_S = 0.5
"""How often the loop's heartbeat wakes."""
STUCK_S = 5.0
"""A loop that woke this late (or whose heartbeat is this old) is stuck."""
STACK_FRAMES = 8
"""Innermost frames of the blocked loop thread's stack logged with ``loop.stuck``."""
WINDOW_S = 60.0
"""How long a stuck episode keeps ``health`` at ``state: stuck`` after the loop recovered."""


class Watchdog:
    """The heartbeat of one event loop and the thread that watches it."""

    def __init__(self, stuck_s: float = STUCK_S) -> None:
        self._stuck_s = stuck_s
        self._interval = min(HEARTBEAT_S, stuck_s / 4)
        self._beat = time.monotonic()
        self._lags: deque[tuple[float, float]] = deque()
        """(when, how late) of heartbeats later than a tenth of ``stuck_s``."""
        self._loop_thread = threading.get_ident()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    async def beat(self) -> None:
        """Wake every :data:`HEARTBEAT_S` (less for a short ``stuck_s``) and record how late;
        runs until cancelled."""
        self._loop_thread = threading.get_ident()
        while True:
            before = time.monotonic()
            await asyncio.sleep(self._interval)
            self._beat = now = time.monotonic()
            lag = now - before - self._interval
            if lag > self._stuck_s / 10:
                self._lags.append((now, lag))
            while self._lags and self._lags[0][0] < now - WINDOW_S:
                self._lags.popleft()

    def report(self) -> dict[str, Any]:
        """``state`` (``ok`` or ``stuck``), ``loop_lag_s`` (worst recent lag) and
        ``heartbeat_age_s`` (since the heartbeat last woke), for ``health``."""
        now = time.monotonic()
        lag = max((lag for when, lag in self._lags if when >= now - WINDOW_S), default=0.0)
        age = now - self._beat
        stuck = max(lag, age) >= self._stuck_s
        return {"state": "stuck" if stuck else "ok", "loop_lag_s": lag, "heartbeat_age_s": age}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()

    def _watch(self) -> None:
        reported = False
        woke = time.monotonic()
        while not self._halt.wait(self._interval):
            now = time.monotonic()
            late, woke = now - woke - self._interval, now
            age = now - self._beat
            if late >= self._stuck_s:
                # This thread was late too: the whole process was stopped (SIGSTOP, a paused
                # VM), not its loop blocked. Its heartbeat has not had a chance to run yet.
                event(logging.WARNING, "process.paused", seconds=f"{late:.1f}")
                continue
            if age >= self._stuck_s and not reported:
                frame = sys._current_frames().get(self._loop_thread)
                stack = "".join(traceback.format_stack(frame, STACK_FRAMES)) if frame else "?"
                event(logging.ERROR, "loop.stuck", heartbeat_age_s=f"{age:.1f}")
                logger.error("loop.stuck stack of the loop thread:\n%s", stack)
            reported = age >= self._stuck_s
