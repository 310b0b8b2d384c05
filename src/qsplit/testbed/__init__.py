"""The local testbed: one agent process per node, links emulated in user space.

``with Testbed.up("infra.yaml") as tb: connect(plan, tb.infra_path, model=...)``; while it runs,
``tb.set_link(...)``, ``tb.set_node_speed(...)``, ``tb.kill_node(...)`` and
``play(tb, load_schedule("schedule.yaml"))`` change it. The CLI is ``qsplit testbed
up|status|set|play|down``. See docs/testbed.md.
"""

from qsplit.testbed._dilation import dilated_infra
from qsplit.testbed._linkemu import LinkClock, LinkProxy, LinkShape
from qsplit.testbed._probe import ProbeServer, probe_request
from qsplit.testbed._processes import stop_processes, wait_for_address
from qsplit.testbed._schedule import (
    PlayedEvent,
    Schedule,
    ScheduleEvent,
    load_schedule,
    play,
    schedule_from_dict,
)
from qsplit.testbed._state import DEFAULT_STATE_DIR, AgentState, LinkState, TestbedState
from qsplit.testbed._supervisor import AGENT_STATISTIC
from qsplit.testbed._testbed import (
    AgentStatus,
    Testbed,
    TestbedError,
    calibrate,
    load_host_file,
)

__all__ = [
    "AGENT_STATISTIC",
    "DEFAULT_STATE_DIR",
    "AgentState",
    "AgentStatus",
    "LinkClock",
    "LinkProxy",
    "LinkShape",
    "LinkState",
    "PlayedEvent",
    "ProbeServer",
    "Schedule",
    "ScheduleEvent",
    "Testbed",
    "TestbedError",
    "TestbedState",
    "calibrate",
    "dilated_infra",
    "load_host_file",
    "load_schedule",
    "play",
    "probe_request",
    "schedule_from_dict",
    "stop_processes",
    "wait_for_address",
]
