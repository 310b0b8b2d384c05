"""What Serve's autoscaler costs a fleet plan, and the least ``min_replicas`` that keeps its p95.

The planner prices every shared node at its planned ``c`` servers. Autoscaled between
``min_replicas`` and ``c`` (``qsplit.serve.NodeScaling("autoscale")``), a node has fewer
whenever Serve has scaled it down, and at a load of ρ·c ≈ 1 ongoing batches Serve does so in
every lull that outlasts the downscale delay: measured on Ray, the p95 of such a phase was 2.3×
the prediction for ``c`` (docs/BENCHMARKS.md). :func:`price_autoscaling` simulates the plan with
the autoscaler (:func:`qsplit.fleet.simulate`, same seed, so the runs share their arrivals) and,
per node, finds the least minimum whose p95 stays within a tolerance of ``c`` servers always.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from qsplit.fleet._autoscale import AutoscalePolicy
from qsplit.fleet._model import Choice, FleetProblem
from qsplit.fleet._simulate import Simulated, simulate

AUTOSCALE_TOLERANCE = 0.10
"""How much above the fixed-``c`` p95 the advised minimum may leave it."""


@dataclass(frozen=True)
class NodeAdvice:
    """The least minimum of workers for one shared node."""

    node: str
    replicas: int
    """The planned ``c``: the autoscaling maximum."""
    min_replicas: int
    """The least minimum whose p95 is within the tolerance (the other nodes at ``c``)."""
    latency_p95_s: float
    """The fleet's p95 with this node autoscaled from that minimum, the others at ``c``."""
    servers: tuple[float, int, int]
    """This node's servers then: (time-weighted mean, fewest, most)."""


@dataclass(frozen=True)
class AutoscalePricing:
    """A plan at its load: fixed ``c`` servers, the policy as given, and the advice."""

    policy: AutoscalePolicy
    tolerance: float
    fixed: Simulated
    """Every node at its planned ``c`` throughout (what the fleet model prices)."""
    autoscaled: Simulated
    """Every node autoscaled by ``policy``."""
    advice: tuple[NodeAdvice, ...]
    advised: Simulated
    """Every node autoscaled by ``policy`` from its advised minimum (nodes interact: check
    its p95 against the fixed one's)."""

    @property
    def cost(self) -> float:
        """The policy's p95 over the fixed one's, minus 1."""
        return self.autoscaled.latency_p95_s / self.fixed.latency_p95_s - 1


def price_autoscaling(
    problem: FleetProblem,
    choice: Choice,
    policy: AutoscalePolicy,
    *,
    tolerance: float = AUTOSCALE_TOLERANCE,
    requests: int = 20_000,
    seed: int = 0,
) -> AutoscalePricing:
    """Simulate ``choice`` with ``policy`` on every shared node and find, node by node (the
    others at ``c``), the least ``min_replicas`` whose fleet p95 is at most ``1 + tolerance``
    times that of ``c`` servers throughout; by bisection, as a larger minimum never leaves a
    node fewer servers (``c`` always qualifies: it is the fixed node)."""
    fleet = problem.fleet

    def run(autoscale: dict[str, AutoscalePolicy] | None) -> Simulated:
        return simulate(problem, choice, requests=requests, seed=seed, autoscale=autoscale)

    fixed = run(None)
    bound = (1 + tolerance) * fixed.latency_p95_s
    advice = []
    for node in fleet.shared_names:
        replicas = fleet.replicas(node)
        tried: dict[int, Simulated] = {}

        def holds(minimum: int, node: str = node, tried: dict[int, Simulated] = tried) -> bool:
            if minimum not in tried:
                tried[minimum] = run({node: replace(policy, min_replicas=minimum)})
            return tried[minimum].latency_p95_s <= bound

        low, high = 1, replicas  # c holds: it is the fixed node
        if holds(low):
            high = low
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if holds(middle) else (middle, high)
        holds(high)  # simulated already, unless the answer is c
        best = tried[high]
        advice.append(NodeAdvice(node, replicas, high, best.latency_p95_s, best.servers[node]))
    advised = run({a.node: replace(policy, min_replicas=a.min_replicas) for a in advice})
    autoscaled = run(dict.fromkeys(fleet.shared_names, policy))
    return AutoscalePricing(policy, tolerance, fixed, autoscaled, tuple(advice), advised)
