"""The adaptive continuum: re-plan when observed links and node speeds change, switch plans
between requests, fail over when a node stops answering (docs/adapt.md).

``run_adaptive(problem, Candidate(plan.assignment, plan.quantized), model, feeds)`` runs a
stream and returns each request's time, latency and plan and the switch points; an
:class:`AdaptiveSession` is the same as a long-lived object.
"""

from qsplit.adapt._policy import AdaptPolicy, Decision
from qsplit.adapt._replan import Candidate, Verdict, device_only, observed_problem, replan
from qsplit.adapt._run import AdaptiveRun, RequestPoint, run_adaptive
from qsplit.adapt._session import AdaptiveSession, AdaptResult

__all__ = [
    "AdaptPolicy",
    "AdaptResult",
    "AdaptiveRun",
    "AdaptiveSession",
    "Candidate",
    "Decision",
    "RequestPoint",
    "Verdict",
    "device_only",
    "observed_problem",
    "replan",
    "run_adaptive",
]
