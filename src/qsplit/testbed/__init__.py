"""The local testbed: one agent process per node, links emulated in user space.

``with Testbed.up("infra.yaml") as tb: connect(plan, tb.infra_path, model=...)``; the CLI is
``qsplit testbed up|status|down``. See docs/testbed.md.
"""

from qsplit.testbed._linkemu import LinkClock, LinkProxy, LinkShape
from qsplit.testbed._probe import ProbeServer, probe_request
from qsplit.testbed._state import DEFAULT_STATE_DIR, AgentState, LinkState, TestbedState
from qsplit.testbed._supervisor import AGENT_STATISTIC
from qsplit.testbed._testbed import AgentStatus, Testbed, TestbedError, calibrate

__all__ = [
    "AGENT_STATISTIC",
    "DEFAULT_STATE_DIR",
    "AgentState",
    "AgentStatus",
    "LinkClock",
    "LinkProxy",
    "LinkShape",
    "LinkState",
    "ProbeServer",
    "Testbed",
    "TestbedError",
    "TestbedState",
    "calibrate",
    "probe_request",
]
