"""Agent processes an emulation starts: waiting for each to listen, and stopping them all.

The testbed's supervisor starts one agent per node; a fleet run (``qsplit.serve``) starts one per
device of a class that keeps the light agent, and its gateways. Both learn an agent's address
from the line ``qsplit agent`` prints once it listens, in the process's log file.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def wait_for_address(
    name: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    timeout_s: float,
    offset: int = 0,
) -> str:
    """The ``host:port`` agent ``name`` prints once it listens, read from its ``log`` from
    ``offset`` on (a restarted agent's log still holds its predecessor's lines); a
    :class:`RuntimeError` with the log's tail if it exits or stays silent for ``timeout_s``."""
    prefix = f"agent {name} listening on "
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with log.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
        for line in text.splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"agent {name} did not start (exit code {process.poll()}):\n{tail}")


def stop_processes(processes: Iterable[subprocess.Popen[bytes]], *, timeout_s: float) -> None:
    """Terminate every process, give them ``timeout_s`` together to exit, then kill the rest."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
