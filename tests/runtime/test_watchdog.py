"""The watchdog tells a loop that runs from one that was blocked (issue 13, item 1)."""

from __future__ import annotations

import asyncio
import logging
import time

from qsplit.runtime._watchdog import HEARTBEAT_S, Watchdog

STUCK_S = 0.4


async def blocked_for(seconds: float) -> dict:
    watchdog = Watchdog(stuck_s=STUCK_S)
    watchdog.start()
    beating = asyncio.create_task(watchdog.beat())
    try:
        await asyncio.sleep(HEARTBEAT_S / 5)
        time.sleep(seconds)  # the loop is blocked: no heartbeat, no handler runs
        await asyncio.sleep(HEARTBEAT_S * 2.5)  # the heartbeat wakes (late) and records it
        return watchdog.report()
    finally:
        beating.cancel()
        watchdog.stop()


def test_a_loop_that_runs_is_ok() -> None:
    report = asyncio.run(blocked_for(0))
    assert report["state"] == "ok" and report["loop_lag_s"] < STUCK_S


def test_a_blocked_loop_is_reported_stuck_and_logged_with_its_stack(caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="qsplit.runtime"):
        report = asyncio.run(blocked_for(STUCK_S * 3))
    assert report["state"] == "stuck" and report["loop_lag_s"] >= STUCK_S
    stuck = [r.getMessage() for r in caplog.records if "loop.stuck" in r.getMessage()]
    assert len(stuck) == 2 and "blocked_for" in stuck[1]  # the event, then the stack
