"""The running testbed's state file: what ``up`` started, so ``status`` and ``down`` can find it.

``<state dir>/testbed.json`` (kind ``testbed-state``, schema version 3) exists exactly while a
supervisor runs: the supervisor writes it once every agent listens, rewrites it whenever its
control channel changes a link, a node's speed or an agent's process, and removes it on its way
out. It records the host calibration the agents were started with (version 1 had a speed factor
per node instead, relative to the host) and, since version 3, the control channel's address and
secret (so the file is readable by its owner only) and each node's current slowdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsplit._jsonio import read_json, write_json
from qsplit.profile import HostReference

STATE_KIND = "testbed-state"
STATE_SCHEMA_VERSION = 3
DEFAULT_STATE_DIR = Path(".qsplit/testbed")


def state_path(state_dir: Path) -> Path:
    return state_dir / "testbed.json"


def requester_infra_path(state_dir: Path) -> Path:
    return state_dir / "infra.yaml"


@dataclass(frozen=True)
class AgentState:
    pid: int
    address: str
    """Where the agent listens (direct, unshaped: the device's own agent is reached this way)."""
    reference_time_s: float
    """The node's time for the reference workload (infrastructure file)."""
    padding_factor: float
    """``reference_time_s`` / the host's: each component run is padded to this × its time."""
    log: str
    speed_factor: float = 1.0
    """How many times slower than its profile the node runs now (``testbed set node``)."""
    killed: bool = False
    """Stopped on purpose through the control channel (until restarted)."""


@dataclass(frozen=True)
class LinkState:
    """One emulated directed link and its two entrances."""

    source: str
    target: str
    latency_s: float
    bandwidth_bytes_per_s: float
    """The link's shape now (the infrastructure file's until ``testbed set link``)."""
    proxy: str
    """Connect here to reach ``target``'s agent over this link."""
    probe: str
    """Connect here to reach a link-probe server over this link."""


@dataclass(frozen=True)
class TestbedState:
    infra: str
    supervisor_pid: int
    requester_infra: str
    agents: dict[str, AgentState]
    links: tuple[LinkState, ...]
    host: HostReference
    """This host's time for the reference workload, measured by ``up`` before any agent ran."""
    control: str
    """Where the supervisor takes control requests (``host:port`` on loopback)."""
    control_token: str
    """The secret every control request must carry."""

    def link(self, source: str, target: str) -> LinkState | None:
        return next((lk for lk in self.links if (lk.source, lk.target) == (source, target)), None)

    def save(self, path: Path) -> None:
        """Write atomically, readable by its owner only (it holds the control secret): a
        reader never sees half a state file."""
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        partial.touch(mode=0o600)
        write_json(partial, STATE_KIND, STATE_SCHEMA_VERSION, self._to_dict())
        partial.replace(path)

    def _to_dict(self) -> dict[str, Any]:
        return {
            "infra": self.infra,
            "supervisor_pid": self.supervisor_pid,
            "requester_infra": self.requester_infra,
            "agents": {name: vars(agent) for name, agent in self.agents.items()},
            "host": self.host.to_dict(),
            "control": self.control,
            "control_token": self.control_token,
            "links": [
                {
                    "from": lk.source,
                    "to": lk.target,
                    "latency_s": lk.latency_s,
                    "bandwidth_bytes_per_s": lk.bandwidth_bytes_per_s,
                    "proxy": lk.proxy,
                    "probe": lk.probe,
                }
                for lk in self.links
            ],
        }

    @classmethod
    def load(cls, path: Path) -> TestbedState:
        data = read_json(path, STATE_KIND, (STATE_SCHEMA_VERSION,))
        return cls(
            infra=data["infra"],
            supervisor_pid=int(data["supervisor_pid"]),
            requester_infra=data["requester_infra"],
            agents={name: AgentState(**agent) for name, agent in data["agents"].items()},
            links=tuple(
                LinkState(
                    source=lk["from"],
                    target=lk["to"],
                    latency_s=lk["latency_s"],
                    bandwidth_bytes_per_s=lk["bandwidth_bytes_per_s"],
                    proxy=lk["proxy"],
                    probe=lk["probe"],
                )
                for lk in data["links"]
            ),
            host=HostReference.from_dict(data["host"]),
            control=data["control"],
            control_token=data["control_token"],
        )


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, already dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
