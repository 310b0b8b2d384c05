"""Per-element prices under the sum latency model, for searching baseline plans quickly.

With latency = Σ compute + Σ transfers, a linearly scalarised objective ``a·T + b·E`` is a sum
of one price per (block, node, precision) and one per (tensor, source, destinations, precision).
Split scans, the min-cut and the greedy quantizer rank thousands of candidate plans with these
prices; every plan they return is then priced by :func:`qsplit.plan.evaluate`, the single cost
model. The prices come from the same coefficient functions the cost model uses
(:meth:`PlanningProblem.compute_s`, :func:`wire_bytes`, :meth:`Route.hop_s`), so under the
sum model a ranking price equals the evaluated objective.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qsplit.model import Tensor
from qsplit.plan._cost import Evaluation, wire_bytes
from qsplit.plan._problem import PlanningProblem, Precision


@dataclass(frozen=True)
class Scalarisation:
    """The weighted objective as ``per_s · latency_s + per_j · energy_j`` (up to a constant).

    Min–max normalisation ``ω_T (T − T_min)/ΔT + ω_E (E − E_min)/ΔE`` is this with
    ``per_s = ω_T/ΔT`` and ``per_j = ω_E/ΔE``; the constant does not change any ranking.
    """

    per_s: float
    per_j: float

    def __call__(self, evaluation: Evaluation) -> float:
        return self.per_s * evaluation.latency_s + self.per_j * evaluation.energy_j


@dataclass(frozen=True)
class Price:
    """What one element adds to the scalarised objective, and to the device's energy."""

    objective: float
    device_j: float

    def __add__(self, other: Price) -> Price:
        return Price(self.objective + other.objective, self.device_j + other.device_j)

    def __sub__(self, other: Price) -> Price:
        return Price(self.objective - other.objective, self.device_j - other.device_j)


ZERO = Price(0.0, 0.0)


class LinearPrices:
    """Prices of blocks and tensor transfers for one problem and one scalarisation."""

    def __init__(self, problem: PlanningProblem, scalarisation: Scalarisation) -> None:
        self.problem = problem
        self.device = problem.infra.device
        self._per_s = scalarisation.per_s
        self._per_j = scalarisation.per_j
        self._power_w = {
            n.name: (n.compute_power_w, n.transmit_power_w) for n in problem.infra.nodes
        }

    def block(self, block: str, node: str, precision: Precision = "fp32") -> Price:
        """Running ``block`` on ``node`` at ``precision``."""
        seconds = self.problem.compute_s(block, node, precision)
        joules = self._power_w[node][0] * seconds
        return Price(
            self._per_s * seconds + self._per_j * joules,
            joules if node == self.device else 0.0,
        )

    def tensor(
        self, tensor: Tensor, source: str, targets: Iterable[str], precision: Precision = "fp32"
    ) -> Price:
        """Sending ``tensor`` from ``source`` once to each other node in ``targets``, along its
        route: each hop at its sender's transmit power."""
        size = wire_bytes(tensor, precision)
        objective = device_j = 0.0
        message_s = self.problem.overhead.message_s
        for target in set(targets) - {source}:
            for link, seconds in self.problem.infra.route(source, target).hop_s(size):
                objective += self._per_s * message_s  # each hop is a message (fixed costs)
                joules = self._power_w[link.source][1] * seconds
                objective += self._per_s * seconds + self._per_j * joules
                if link.source == self.device:
                    device_j += joules
        return Price(objective, device_j)

    def local_message(self, tensor: Tensor, precision: Precision = "fp32") -> Price:
        """The requester's local message for ``tensor`` (a model input read on the device, a
        model output produced there: :func:`qsplit.plan.overhead_s`); latency only."""
        seconds = self.problem.overhead.local_message_s(wire_bytes(tensor, precision))
        return Price(self._per_s * seconds, 0.0)
