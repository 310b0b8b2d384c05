"""The distributed runtime: agents that run components, and sessions that deploy and infer.

``with qsplit.runtime.connect(plan, infra, model=path) as s: outputs = s.infer(feeds)``; the
wire format, failure semantics and security are described in ``docs/runtime.md``.
"""

from qsplit.runtime._agent import MAX_SLOWDOWN, AgentSettings, check_gateway, run_agent, serve
from qsplit.runtime._ask import health_of, slow_down
from qsplit.runtime._client import InferResult, Session, connect
from qsplit.runtime._deployment import (
    ComponentSpec,
    Deployment,
    build_deployment,
    load_deployment,
    renamed_deployment,
)
from qsplit.runtime._hosted import ComponentHost, HostedComponent
from qsplit.runtime._inputs import image_requests, random_requests
from qsplit.runtime._keys import CurveKeys, KeyFiles, curve_keys, generate_keys, read_secret_key
from qsplit.runtime._log import event as log_event
from qsplit.runtime._measure import ComponentRun, RequestRecord, Transfer, save_results, summarize
from qsplit.runtime._observe import Awaited, LinkEstimate, NodeEstimate, Observed, Observer
from qsplit.runtime._overhead import measure_overhead
from qsplit.runtime._profile import profile_on_agent
from qsplit.runtime._quantized import quantized_model
from qsplit.runtime._wire import Limits, Message, Quant
from qsplit.runtime.errors import PeerDisconnected, PeerTimeout, ProtocolError, RemoteError

__all__ = [
    "MAX_SLOWDOWN",
    "AgentSettings",
    "Awaited",
    "ComponentHost",
    "ComponentRun",
    "ComponentSpec",
    "CurveKeys",
    "Deployment",
    "HostedComponent",
    "InferResult",
    "KeyFiles",
    "Limits",
    "LinkEstimate",
    "Message",
    "NodeEstimate",
    "Observed",
    "Observer",
    "PeerDisconnected",
    "PeerTimeout",
    "ProtocolError",
    "Quant",
    "RemoteError",
    "RequestRecord",
    "Session",
    "Transfer",
    "build_deployment",
    "check_gateway",
    "connect",
    "curve_keys",
    "generate_keys",
    "health_of",
    "image_requests",
    "load_deployment",
    "log_event",
    "measure_overhead",
    "profile_on_agent",
    "quantized_model",
    "random_requests",
    "read_secret_key",
    "renamed_deployment",
    "run_agent",
    "save_results",
    "serve",
    "slow_down",
    "summarize",
]
