"""Start, find, inspect and stop a local testbed (see :mod:`qsplit.testbed._supervisor`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsplit.errors import InputError, QsplitError
from qsplit.infra import Infra, load_infra
from qsplit.profile import (
    HostReference,
    LinkProfile,
    load_host_reference,
    measure_host,
    measure_link,
    node_factors,
)
from qsplit.runtime import health_of
from qsplit.testbed._control import control_request
from qsplit.testbed._probe import probe_request
from qsplit.testbed._state import (
    DEFAULT_STATE_DIR,
    LinkState,
    TestbedState,
    process_alive,
    state_path,
)
from qsplit.testbed._supervisor import AGENT_STATISTIC

START_TIMEOUT_S = 120.0
CONTROL_TIMEOUT_S = 90.0
"""How long a control request may take: a restart waits for the agent to listen (≤ 60 s)."""
STOP_TIMEOUT_S = 15.0
AGENT_THREADS = 1
"""ORT threads per component on the testbed's agents (the supervisor leaves the agents' default):
the host is measured with as many."""
HEALTH_TIMEOUT_S = 3.0
"""How long ``status`` waits for an agent's ``health`` before calling it deaf."""


class TestbedError(QsplitError):
    """The testbed could not start, or something it started would not stop."""


@dataclass(frozen=True)
class AgentStatus:
    name: str
    pid: int
    address: str
    reference_time_s: float
    padding_factor: float
    speed_factor: float
    """How many times slower than its profile the node runs now (:meth:`Testbed.set_node_speed`)."""
    alive: bool
    listening: bool
    state: str
    """``ok``; ``stuck`` (it answers, but its loop ran late, see ``health``); ``deaf`` (it
    listens, but did not answer ``health`` in :data:`HEALTH_TIMEOUT_S`); ``alive`` (running,
    not listening); ``dead``; ``killed`` (dead, by :meth:`Testbed.kill_node`)."""


def _state(alive: bool, listening: bool, address: str) -> str:
    if not alive:
        return "dead"
    if not listening:
        return "alive"
    health = health_of(address, timeout_s=HEALTH_TIMEOUT_S)
    return "deaf" if health is None else str(health.get("state", "ok"))


class Testbed:
    """A running local testbed: one agent per node, every directed link emulated.

    ``with Testbed.up("infra.yaml") as testbed: ...`` stops it on the way out; the CLI's
    ``qsplit testbed up`` leaves it running and ``down`` finds it again by its state directory.
    """

    def __init__(
        self,
        state_dir: Path,
        state: TestbedState,
        supervisor: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.state = state
        self._supervisor = supervisor

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        infra: str | Path,
        state_dir: str | Path = DEFAULT_STATE_DIR,
        *,
        owner_pid: int | None = None,
        host: HostReference | None = None,
    ) -> Testbed:
        """Calibrate against this host, start the supervisor for ``infra`` and return once
        every agent listens.

        With ``owner_pid`` the testbed stops by itself once that process is gone: a demo or a
        test run that is killed (SIGKILL, a CI time-out) cannot leave agents behind. The CLI's
        ``testbed up`` gives none, its testbed outliving the command on purpose.

        The host's time for the reference workload is measured first, while nothing of the
        testbed runs, with the agents' threads and statistic, unless ``host`` gives it (a
        measurement of this host saved earlier, :func:`qsplit.profile.load_host_reference`);
        a node the host is too slow for is refused (:class:`InputError`) before anything
        starts.
        """
        infra, state_dir = Path(infra), Path(state_dir)
        load_infra(infra)  # bad input is reported here, not in a detached process's log
        running = cls.find(state_dir)
        if running is not None:
            raise InputError(
                f"a testbed is already running from {state_dir}",
                file=state_path(state_dir),
                fix=f"stop it first: qsplit testbed down --state-dir {state_dir}",
            )
        host = calibrate(infra, host)[0]  # so is a host too slow for a node
        state_dir.mkdir(parents=True, exist_ok=True)
        state_path(state_dir).unlink(missing_ok=True)
        log_path = state_dir / "supervisor.log"
        with log_path.open("wb") as log:
            supervisor = subprocess.Popen(
                [
                    *(sys.executable, "-m", "qsplit.testbed._supervisor"),
                    *("--infra", str(infra), "--state-dir", str(state_dir)),
                    *("--host", json.dumps(host.to_dict())),
                    *(() if owner_pid is None else ("--owner-pid", str(owner_pid))),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not state_path(state_dir).exists():
            if supervisor.poll() is not None or time.monotonic() > deadline:
                supervisor.kill()
                supervisor.wait()
                _kill_group(supervisor.pid)
                tail = log_path.read_text(errors="replace")[-3000:]
                raise TestbedError(f"the testbed did not start; {log_path} ends with:\n{tail}")
            time.sleep(0.05)
        return cls(state_dir, TestbedState.load(state_path(state_dir)), supervisor)

    @classmethod
    def find(cls, state_dir: str | Path = DEFAULT_STATE_DIR) -> Testbed | None:
        """The testbed running from ``state_dir``, or ``None``. A state file left by a
        supervisor that died is cleaned up (its agents are stopped) and ``None`` returned."""
        state_dir = Path(state_dir)
        if not state_path(state_dir).exists():
            return None
        testbed = cls(state_dir, TestbedState.load(state_path(state_dir)))
        if not process_alive(testbed.state.supervisor_pid):
            testbed.down()
            return None
        return testbed

    @classmethod
    def attach(cls, state_dir: str | Path = DEFAULT_STATE_DIR) -> Testbed:
        """Like :meth:`find`, but a missing testbed is an error that says how to start one."""
        testbed = cls.find(state_dir)
        if testbed is None:
            raise InputError(
                f"no testbed is running from {state_dir}",
                fix="start one: qsplit testbed up --infra FILE",
            )
        return testbed

    def down(self) -> None:
        """Stop the supervisor and everything it started; raise if a process survives."""
        self.refresh()
        pids = [self.state.supervisor_pid, *(a.pid for a in self.state.agents.values())]
        _signal(self.state.supervisor_pid, signal.SIGTERM)
        _wait_until(lambda: not process_alive(self.state.supervisor_pid), STOP_TIMEOUT_S)
        _kill_group(self.state.supervisor_pid)
        for pid in pids[1:]:
            _signal(pid, signal.SIGKILL)
        if self._supervisor is not None:
            self._supervisor.wait(timeout=STOP_TIMEOUT_S)
        _wait_until(lambda: not any(map(process_alive, pids)), STOP_TIMEOUT_S)
        survivors = [pid for pid in pids if process_alive(pid)]
        if survivors:
            raise TestbedError(f"processes {survivors} survived `testbed down`; kill them by hand")
        state_path(self.state_dir).unlink(missing_ok=True)

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- use -------------------------------------------------------------------------------

    @property
    def infra_path(self) -> Path:
        """The infrastructure file as the requesting device sees the testbed (pass it to
        ``qsplit deploy/run`` or :func:`qsplit.connect`)."""
        return Path(self.state.requester_infra)

    def infra(self) -> Infra:
        return load_infra(self.infra_path)

    def refresh(self) -> TestbedState:
        """Read the state file again: the control channel changes links, speeds and pids."""
        path = state_path(self.state_dir)
        if path.exists():
            self.state = TestbedState.load(path)
        return self.state

    def status(self) -> list[AgentStatus]:
        """Each agent's process, socket and ``health`` answer: a process that lives and listens
        but does not answer is reported deaf, not ok."""
        self.refresh()
        statuses = []
        for name, agent in self.state.agents.items():
            alive, listening = process_alive(agent.pid), _accepts(agent.address)
            statuses.append(
                AgentStatus(
                    name=name,
                    pid=agent.pid,
                    address=agent.address,
                    reference_time_s=agent.reference_time_s,
                    padding_factor=agent.padding_factor,
                    speed_factor=agent.speed_factor,
                    alive=alive,
                    listening=listening,
                    state="killed"
                    if agent.killed and not alive
                    else _state(alive, listening, agent.address),
                )
            )
        return statuses

    # -- control while running -------------------------------------------------------------

    def set_link(
        self,
        source: str,
        target: str,
        *,
        bandwidth_bytes_per_s: float | None = None,
        latency_s: float | None = None,
    ) -> LinkState:
        """Give the directed link ``source → target`` a new bandwidth and/or latency; bytes
        entering it from now on are carried at the new shape. Returns the link as it is now."""
        self._control(
            "set_link",
            source=source,
            target=target,
            bandwidth_bytes_per_s=bandwidth_bytes_per_s,
            latency_s=latency_s,
        )
        link = self.state.link(source, target)
        assert link is not None  # the supervisor refuses a link it does not have
        return link

    def set_node_speed(self, node: str, factor: float) -> None:
        """Run ``node`` ``factor`` times slower than its profile from now on (1: as profiled):
        its agent pads every later component run to ``factor ×`` the time it padded to before.
        A killed node takes the factor when it is restarted."""
        self._control("set_node_speed", node=node, factor=factor)

    def kill_node(self, node: str) -> None:
        """SIGKILL ``node``'s agent, as a machine that dies: its requests in flight are lost,
        its port stops answering. :meth:`restart_node` brings it back."""
        self._control("kill_node", node=node)

    def restart_node(self, node: str) -> None:
        """Start ``node``'s agent again (killed first if it runs) on the port it had, so every
        address of it stays valid, at its last speed; returns once it listens. It holds no
        deployment: whoever used it deploys again."""
        self._control("restart_node", node=node)

    def _control(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request to the supervisor's control channel; a refusal is raised as
        :class:`InputError` (with the field and the fix the supervisor named), a failure as
        :class:`TestbedError`."""
        state = self.refresh()
        answer = control_request(
            state.control, state.control_token, op, fields, timeout_s=CONTROL_TIMEOUT_S
        )
        self.refresh()
        if answer.get("ok"):
            return answer
        error = str(answer.get("error"))
        if answer.get("reason") == "refused":
            raise InputError(error, field=answer.get("field"), fix=answer.get("fix"))
        raise TestbedError(f"testbed control {op}: {error}")

    def measure_links(
        self,
        *,
        repetitions: int = 5,
        on_link: Callable[[str, str], None] | None = None,
    ) -> LinkProfile:
        """Measure every emulated link with :func:`qsplit.profile.measure_link`, one at a
        time (links measured together would share the cores that time them)."""
        measured = []
        for link in self.state.links:
            if on_link is not None:
                on_link(link.source, link.target)
            with probe_request(link.probe) as request:
                measured.append(
                    measure_link(
                        request, source=link.source, target=link.target, repetitions=repetitions
                    )
                )
        return LinkProfile(links=tuple(measured))


def calibrate(
    infra: str | Path, host: HostReference | None = None
) -> tuple[HostReference, dict[str, float]]:
    """This host's time for the reference workload, measured as the testbed's agents time
    components (or ``host``, measured so before), and the padding factor of every node of
    ``infra`` on it (:class:`InputError` for a node this host is too slow to emulate, or has
    too little headroom for: the host's whole runs are timed too,
    :data:`qsplit.profile.HEADROOM`)."""
    loaded = load_infra(infra)
    if host is None:
        host = measure_host(AGENT_STATISTIC, threads=AGENT_THREADS, whole=True)
    return host, node_factors(loaded, host)


def load_host_file(path: str | Path) -> tuple[HostReference, str]:
    """A host reference saved by ``qsplit testbed calibrate --out`` and when it was measured,
    checked against what the testbed's agents use (:func:`qsplit.profile.load_host_reference`)."""
    return load_host_reference(path, statistic=AGENT_STATISTIC, threads=AGENT_THREADS)


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid`` if it is still a qsplit process (a stale state file's pid may have been
    reused by something else since)."""
    try:
        if b"qsplit" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
    except OSError:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _accepts(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False
