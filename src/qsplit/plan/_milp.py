"""The MILP: placement and precision of every block and link mode of every crossing tensor, in
the edge-assignment formulation.

Only placement ``x[i,k]``, precision ``z[i,l]`` and link mode ``u[t,m]`` are binary. Everything
that couples them is a continuous variable constrained by *marginals*, so that its value is
forced to the exact product once they are integral, and the LP relaxation stays nearly integral:

* ``xz[i,k,l] ≥ 0`` with ``Σ_l xz = x[i,k]`` and ``Σ_k xz = z[i,l]`` (``i`` on ``k`` at ``l``);
* for each tensor → destination edge, ``e[k,h] ≥ 0`` with ``Σ_h e = x[src,k]`` and
  ``Σ_k e = x[dst,h]`` (source on ``k``, destination on ``h``); an endpoint pinned to the device
  (model input, model output) turns ``e`` into a plain placement variable;
* ``carry[t,(k,h)]`` (tensor ``t`` is sent ``k→h``): ``e`` itself when ``t`` has a single
  destination, otherwise ``y ≥ e`` for each destination, so it is charged once per node pair.
  A pair without a direct link is a *virtual link*: the same variables, with the route's
  coefficients (each hop's time charged to that hop's link and sender, :meth:`Infra.route`), so
  the formulation keeps its size whatever the topology;
* a tensor with several link modes (:meth:`PlanningProblem.link_modes`) has binary
  ``u[t,m]``, ``Σ_m u = 1``; a lossy link precision needs an fp32 producer
  (``u[t,m] ≤ z[src,fp32]``) and a crossing edge (``1 − u[t,fp32] ≤ Σ`` crossing ``e``), so
  plans carry no link choice that does nothing;
* the carried (and, for the critical path, the per-edge) amounts are split by *form*: the
  producer's precision and the link mode, ``Σ_f c_f = c`` with ``c_f ≤ z[src,l]`` and
  ``c_f ≤ u[t,m]``, to price quantized, lower-precision and compressed transfers (bytes on
  each hop, encode time on the sender, decode time on the receiver);
* noise: one AND variable per monomial, and an OR variable for the intercept (``η(∅) = 0``); a
  link variable ``link:t:p`` is ``Σ_codec u[t,(p, codec)]``.

Contract used by the HiGHS session's reduced-cost fixing (:mod:`qsplit.plan._highs`): every
continuous variable bounded to [0, 1] is 0 or 1 in the least-cost completion of integral ``x``,
``z``, ``u`` — the marginals, splits by form, AND and OR variables are forced to exact products,
and ``y`` only appears with non-negative coefficients in every bound and objective (its form
parts carry hop, encode and decode times, all ≥ 0), so its least value ``max e`` is as good as
any. Variables that are not 0/1 (finish times, ``T``) have no upper bound.

docs/planner.md derives each piece; :mod:`qsplit.plan._cost` defines the same quantities for a
fixed plan, and the tests check the two against each other by brute force.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count

import pulp

from qsplit.model import Tensor
from qsplit.plan._cost import decode_s, encode_s, sent_bytes, weight_bytes, wire_bytes
from qsplit.plan._problem import FP32_LINK, LinkMode, PlanningProblem, Precision
from qsplit.plan._solver import DISABLED
from qsplit.profile import Overhead
from qsplit.quant import NoisePolynomial, link_variable

Expr = pulp.LpAffineExpression
XVars = dict[tuple[str, str], pulp.LpVariable]
"""(block, node) → placement bit."""
ZVars = dict[tuple[str, Precision], pulp.LpVariable]
"""(block, precision) → precision bit, quantizable blocks only."""
UVars = dict[tuple[str, LinkMode], pulp.LpVariable]
"""(tensor, link mode) → link mode bit, tensors with several modes only."""
Form = tuple[Precision, LinkMode]
"""How a tensor travels: its producer's precision and its link mode."""
_SOURCE = "<source>"
_SINK = "<sink>"


@dataclass
class Formulation:
    """A built model and the expressions the planner optimises or bounds."""

    prob: pulp.LpProblem
    latency: Expr
    energy: Expr
    device_energy: Expr
    noise: Expr
    memory: dict[str, Expr]
    bound_rows: dict[str, pulp.LpConstraint]
    """``noise``, ``device-energy``, ``memory:<node>`` → its ``≤`` row (switched off if unset)."""
    lex_rows: dict[str, pulp.LpConstraint]
    """``latency``, ``energy`` → a row used to keep one objective at its optimum."""
    x: XVars
    z: ZVars
    u: UVars
    noise_model: NoisePolynomial | None

    def row_upper(self, name: str, limit: float | None) -> float | None:
        """The right-hand side of bound row ``name`` for ``limit`` in the quantity's own units.

        Only the noise row differs: it bounds the polynomial, i.e. ``noise ** power``.
        """
        return _row_upper(self.noise_model, name, limit)

    def quantity(self, name: str) -> Expr:
        """The expression a bound row limits (for infeasibility explanations)."""
        if name == "noise":
            return self.noise
        if name == "device-energy":
            return self.device_energy
        return self.memory[name.removeprefix("memory:")]

    def read_assignment(self) -> tuple[dict[str, str], tuple[str, ...], dict[str, LinkMode]]:
        """Block → node, the quantized blocks and the link modes other than fp32 of the
        solution on the variables."""
        assignment: dict[str, str] = {}
        for (block, node), var in self.x.items():
            if (var.value() or 0.0) > 0.5:
                assignment[block] = node
        quantized = tuple(
            b for (b, level), v in self.z.items() if level == "int8" and (v.value() or 0.0) > 0.5
        )
        links = {
            t: mode
            for (t, mode), v in self.u.items()
            if mode != FP32_LINK and (v.value() or 0.0) > 0.5
        }
        return assignment, quantized, links


@dataclass
class _Builder:
    problem: PlanningProblem
    prob: pulp.LpProblem = field(default_factory=lambda: pulp.LpProblem("qsplit", pulp.LpMinimize))
    _ids: Iterator[int] = field(default_factory=count)

    def var(
        self, prefix: str, *, binary: bool = False, upper: float | None = 1.0
    ) -> pulp.LpVariable:
        # Short generated names keep PuLP fast and immune to characters in block names.
        category = pulp.LpBinary if binary else pulp.LpContinuous
        name, upper = f"{prefix}{next(self._ids)}", None if binary else upper
        return self.prob.add_variable(name, 0, upper, category)  # PuLP ≥ 3.3

    def add(self, constraint: pulp.LpConstraint) -> pulp.LpConstraint:
        constraint.name = f"r{next(self._ids)}"
        self.prob.addConstraint(constraint)
        return constraint


def build(problem: PlanningProblem) -> Formulation:
    """Formulate ``problem`` (bounds set from ``problem.bounds``; objective left to the caller)."""
    b = _Builder(problem)
    graph, infra = problem.graph, problem.infra
    nodes, device = infra.node_names, infra.device
    x, z, xz = _placement(b)
    u = _link_modes(b, z)
    compute_s = {
        (blk.name, k): pulp.lpSum(
            problem.compute_s(blk.name, k, lv) * xz[blk.name, k, lv]
            for lv in problem.precisions(blk.name)
        )
        for blk in graph.blocks
        for k in nodes
    }
    flows = _tensor_flows(b, x, z, u)

    node_compute = {
        k: pulp.lpSum(compute_s[blk.name, k] for blk in graph.blocks) + pulp.lpSum(flows.codec_s[k])
        for k in nodes
    }
    node_send = {
        k: pulp.lpSum(t for (src, _), ts in flows.transfer_s.items() if src == k for t in ts)
        for k in nodes
    }
    energy_of = {
        k: infra.node(k).compute_power_w * node_compute[k]
        + infra.node(k).transmit_power_w * node_send[k]
        for k in nodes
    }
    energy = pulp.lpSum(energy_of.values())
    if problem.latency_model == "sum":
        latency = pulp.lpSum(node_compute.values()) + pulp.lpSum(node_send.values())
    else:
        latency = _critical_path(b, compute_s, node_compute, flows.edge_time)
    latency += _overhead(b, x, xz, flows.messages)
    memory = {
        k: pulp.lpSum(
            weight_bytes(blk.weight_bytes, lv) * xz[blk.name, k, lv]
            for blk in graph.blocks
            for lv in problem.precisions(blk.name)
        )
        + pulp.lpSum(flows.present[k])
        for k in nodes
    }
    noise = _noise(b, z, u)

    bounds = problem.bounds
    limits = {
        "noise": bounds.noise_max,
        "device-energy": bounds.device_energy_budget_j,
        **{f"memory:{n.name}": n.memory_bytes if bounds.memory else None for n in infra.nodes},
    }
    expressions = {"noise": noise, "device-energy": energy_of[device]} | {
        f"memory:{k}": memory[k] for k in nodes
    }
    noise_model = problem.noise if problem.noise_variables else None
    bound_rows = {}
    for name, limit in limits.items():
        rhs = _row_upper(noise_model, name, limit)
        bound_rows[name] = b.add(expressions[name] <= (DISABLED if rhs is None else rhs))
    lex_rows = {"latency": b.add(latency <= DISABLED), "energy": b.add(energy <= DISABLED)}
    return Formulation(
        prob=b.prob,
        latency=latency,
        energy=energy,
        device_energy=energy_of[device],
        noise=noise,
        memory=memory,
        bound_rows=bound_rows,
        lex_rows=lex_rows,
        x=x,
        z=z,
        u=u,
        noise_model=noise_model,
    )


def _placement(b: _Builder) -> tuple[XVars, ZVars, dict[tuple[str, str, Precision], Expr]]:
    """``x[i,k]``, ``z[i,l]`` and their exact products ``xz[i,k,l]`` (marginals per block)."""
    problem = b.problem
    nodes = problem.infra.node_names
    x = {(blk, k): b.var("x", binary=True) for blk in problem.graph.block_names for k in nodes}
    z: ZVars = {}
    xz: dict[tuple[str, str, Precision], Expr] = {}
    for blk in problem.graph.block_names:
        b.add(pulp.lpSum(x[blk, k] for k in nodes) == 1)
        levels = problem.precisions(blk)
        if len(levels) == 1:
            xz.update({(blk, k, levels[0]): x[blk, k] + 0 for k in nodes})
            continue
        z.update({(blk, lv): b.var("z", binary=True) for lv in levels})
        b.add(pulp.lpSum(z[blk, lv] for lv in levels) == 1)
        cells = _marginals(
            b,
            rows={k: x[blk, k] for k in nodes},
            cols={lv: z[blk, lv] for lv in levels},
            pairs=[(k, lv) for k in nodes for lv in levels],
        )
        xz.update({(blk, k, lv): cell for (k, lv), cell in cells.items()})
    return x, z, xz


def _link_modes(b: _Builder, z: ZVars) -> UVars:
    """``u[t,m]`` for tensors with a choice of link mode; lossy ones only after fp32."""
    problem = b.problem
    u: UVars = {}
    for tensor in problem.graph.tensors:
        modes = problem.link_modes(tensor.name)
        if len(modes) == 1:
            continue
        u.update({(tensor.name, m): b.var("u", binary=True) for m in modes})
        b.add(pulp.lpSum(u[tensor.name, m] for m in modes) == 1)
        producer = tensor.producer
        if producer is not None and (producer, "fp32") in z:
            for m in modes:
                if m.precision != "fp32":
                    b.add(u[tensor.name, m] <= z[producer, "fp32"])
    return u


@dataclass
class _Flows:
    transfer_s: dict[tuple[str, str], list[Expr]]
    """Physical link → time of each tensor hop it carries (relayed hops on their own links)."""
    present: dict[str, list[Expr]]
    """Node → bytes of each tensor present on it."""
    codec_s: dict[str, list[Expr]]
    """Node → time of each link encode and decode it runs."""
    edge_time: dict[tuple[str, str], Expr]
    """(tensor, destination) → transfer time on that edge (critical-path model only)."""
    messages: list[Expr] = field(default_factory=list)
    """Hops of every carried tensor: each is a runtime message, priced by the fixed costs."""


def _tensor_flows(b: _Builder, x: XVars, z: ZVars, u: UVars) -> _Flows:
    """Edges, carried tensors and their split by form, for every tensor of the graph."""
    problem = b.problem
    infra = problem.infra
    nodes = infra.node_names
    crossing = [(k, h) for k in nodes for h in nodes if k != h and infra.has_route(k, h)]
    links = {(lk.source, lk.target): [] for lk in infra.links}
    flows = _Flows(links, {k: [] for k in nodes}, {k: [] for k in nodes}, {})

    def timed(tensor: Tensor, split: dict[tuple[str, str], dict[Form, Expr]]) -> Expr:
        """Arrival delay: encode, the whole route's time (store-and-forward), decode."""
        return pulp.lpSum(
            (
                encode_s(problem, tensor, lv, m, k)
                + infra.route(k, h).transfer_s(sent_bytes(problem, tensor, lv, m))
                + decode_s(problem, tensor, lv, m, h)
            )
            * amount
            for (k, h), amounts in split.items()
            for (lv, m), amount in amounts.items()
        )

    def hops(tensor: Tensor, pair: tuple[str, str], amounts: dict[Form, Expr]) -> None:
        """Charge each hop of the route ``pair`` to its own link, the codecs to its ends."""
        k, h = pair
        for (lv, m), amount in amounts.items():
            for link, seconds in infra.route(k, h).hop_s(sent_bytes(problem, tensor, lv, m)):
                flows.transfer_s[link.source, link.target].append(seconds * amount)
            if m != FP32_LINK:
                flows.codec_s[k].append(encode_s(problem, tensor, lv, m, k) * amount)
                flows.codec_s[h].append(decode_s(problem, tensor, lv, m, h) * amount)

    for tensor in problem.graph.tensors:
        destinations = list(dict.fromkeys(tensor.consumers))
        if tensor.is_model_output:
            destinations.append(_SINK)
        if tensor.producer is None:
            flows.present[infra.device].append(pulp.LpAffineExpression(constant=tensor.bytes))
        else:
            for k in nodes:
                flows.present[k].append(tensor.bytes * x[tensor.producer, k])
        edges = {d: _edge(b, x, tensor.producer or _SOURCE, d) for d in destinations}
        modes = problem.link_modes(tensor.name)
        if len(modes) > 1:  # a link mode other than fp32 only where the tensor crosses
            b.add(
                pulp.lpSum(u[tensor.name, m] for m in modes if m != FP32_LINK)
                <= pulp.lpSum(cell for e in edges.values() for cell in e.values())
            )
        if len(destinations) == 1:
            carry = edges[destinations[0]]
        else:  # charged once per node pair: y ≥ each destination's edge on that pair
            carry = {}
            for pair in crossing:
                terms = [e[pair] for e in edges.values() if pair in e]
                if terms:
                    y = b.var("y")
                    for term in terms:
                        b.add(y >= term)
                    carry[pair] = y + 0
        carried = _by_form(b, z, u, tensor, carry)
        for (k, h), amounts in carried.items():
            hops(tensor, (k, h), amounts)
            flows.messages.append(len(infra.route(k, h).hops) * carry[k, h])
            flows.present[h].append(tensor.bytes * carry[k, h])
        if problem.latency_model == "critical-path":
            for d, edge in edges.items():
                split = carried if len(destinations) == 1 else _by_form(b, z, u, tensor, edge)
                flows.edge_time[tensor.name, d] = timed(tensor, split)
    return flows


def _marginals(
    b: _Builder,
    *,
    rows: dict[str, pulp.LpVariable],
    cols: dict[str, pulp.LpVariable],
    pairs: list[tuple[str, str]],
) -> dict[tuple[str, str], Expr]:
    """Variables ``v[r,c] ≥ 0`` over ``pairs`` whose row and column sums are ``rows``/``cols``.

    When the sums are 0/1 with a single 1 on each side, the only solution puts 1 on that pair:
    the product of the two indicators, without any product constraint.
    """
    cells = {pair: b.var("m") for pair in pairs}
    for side, totals in ((0, rows), (1, cols)):
        for key, total in totals.items():
            # Σ cells − total = 0, written as one term list: PuLP's operators copy expressions.
            terms = [(v, 1.0) for pair, v in cells.items() if pair[side] == key]
            terms.append((total, -1.0))
            b.add(pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintEQ, rhs=0))
    return {pair: pulp.LpAffineExpression([(v, 1.0)]) for pair, v in cells.items()}


def _edge(b: _Builder, x: XVars, source: str, destination: str) -> dict[tuple[str, str], Expr]:
    """Crossing part of a tensor edge: (k, h) → 1 when source is on k and destination on h ≠ k.

    ``source``/``destination`` are block names or the device-pinned source/sink. Pairs without a
    route are left out of the marginals, which forbids placing the two ends across them.
    """
    infra = b.problem.infra
    nodes, device = infra.node_names, infra.device
    source_pinned, destination_pinned = source == _SOURCE, destination == _SINK
    if source_pinned and destination_pinned:
        return {}
    if source_pinned or destination_pinned:
        # One end sits on the device: the edge is the other end's placement.
        free = destination if source_pinned else source
        result = {}
        for k in nodes:
            pair = (device, k) if source_pinned else (k, device)
            if k == device:
                continue
            if infra.has_route(*pair):
                result[pair] = x[free, k] + 0
            else:
                b.add(x[free, k] == 0)
        return result
    allowed = [(k, h) for k in nodes for h in nodes if k == h or infra.has_route(k, h)]
    cells = _marginals(
        b,
        rows={k: x[source, k] for k in nodes},
        cols={h: x[destination, h] for h in nodes},
        pairs=allowed,
    )
    return {pair: v for pair, v in cells.items() if pair[0] != pair[1]}


def _by_form(
    b: _Builder, z: ZVars, u: UVars, tensor: Tensor, amounts: dict[tuple[str, str], Expr]
) -> dict[tuple[str, str], dict[Form, Expr]]:
    """Split each carried amount by form (producer's precision, link mode), as it is sent."""
    producer = tensor.producer
    levels = b.problem.precisions(producer) if producer else ("fp32",)
    modes = b.problem.link_modes(tensor.name)
    forms = [(lv, m) for lv in levels for m in modes if lv == "fp32" or m.precision == "fp32"]
    if len(forms) == 1:
        return {pair: {forms[0]: amount} for pair, amount in amounts.items()}
    result = {}
    for pair, amount in amounts.items():
        parts = {form: b.var("w") for form in forms}
        b.add(pulp.lpSum(parts.values()) == amount)
        for (lv, m), part in parts.items():
            if len(levels) > 1 and producer is not None:
                b.add(part <= z[producer, lv])
            if len(modes) > 1:
                b.add(part <= u[tensor.name, m])
        result[pair] = {form: part + 0 for form, part in parts.items()}
    return result


def _critical_path(
    b: _Builder,
    compute_s: dict[tuple[str, str], Expr],
    node_compute: dict[str, Expr],
    edge_time: dict[tuple[str, str], Expr],
) -> Expr:
    """Latency variable ``T`` ≥ every finish time, output return and node load."""
    graph, nodes = b.problem.graph, b.problem.infra.node_names
    finish = {blk.name: b.var("f", upper=None) for blk in graph.blocks}
    latency = b.var("T", upper=None)
    own = {blk.name: pulp.lpSum(compute_s[blk.name, k] for k in nodes) for blk in graph.blocks}
    for blk in graph.blocks:
        b.add(finish[blk.name] >= own[blk.name])
        b.add(latency >= finish[blk.name])
    for tensor in graph.tensors:
        ready = finish[tensor.producer] if tensor.producer else 0
        for consumer in dict.fromkeys(tensor.consumers):
            b.add(finish[consumer] >= ready + edge_time[tensor.name, consumer] + own[consumer])
        if tensor.is_model_output:
            b.add(latency >= ready + edge_time[tensor.name, _SINK])
    for k in nodes:
        b.add(latency >= node_compute[k])
    return latency + 0


def _overhead(
    b: _Builder, x: XVars, xz: dict[tuple[str, str, Precision], Expr], messages: list[Expr]
) -> Expr:
    """The requester's fixed costs, as :func:`qsplit.plan._cost.overhead_s` defines them:
    ``message_s`` per carried hop; a model input's local message with ``u ≥ x[c, device]`` over
    its consumers ``c`` (``u`` has positive cost only, so it takes their maximum), an output's
    with its producer's placement-and-precision product on the device."""
    problem = b.problem
    overhead, device = problem.overhead, problem.infra.device
    if overhead == Overhead():
        return pulp.LpAffineExpression()  # no variables where there is nothing to charge
    terms: list[Expr] = [pulp.LpAffineExpression(constant=overhead.request_s)]
    terms.extend(overhead.message_s * hops for hops in messages)
    for tensor in problem.graph.tensors:
        producer = tensor.producer
        consumers = list(dict.fromkeys(tensor.consumers))
        if producer is None and tensor.is_model_output:
            terms.append(pulp.LpAffineExpression(constant=overhead.local_message_s(tensor.bytes)))
        elif producer is None and consumers:
            read = b.var("u")
            for consumer in consumers:
                b.add(read >= x[consumer, device])
            terms.append(overhead.local_message_s(tensor.bytes) * read)
        if tensor.is_model_output and producer is not None:
            terms.extend(
                overhead.local_message_s(wire_bytes(tensor, lv)) * xz[producer, device, lv]
                for lv in problem.precisions(producer)
            )
    return pulp.lpSum(terms)


def _row_upper(noise_model: NoisePolynomial | None, name: str, limit: float | None) -> float | None:
    if limit is None or name != "noise" or noise_model is None:
        return limit
    return noise_model.polynomial_bound(limit)


def _noise(b: _Builder, z: ZVars, u: UVars) -> Expr:
    """``intercept·OR(q) + Σ coefficient·AND(q_S)``, exact for binary ``q``."""
    problem = b.problem
    poly = problem.noise
    if poly is None or not problem.noise_variables:
        return pulp.LpAffineExpression()
    q: dict[str, Expr] = {blk: z[blk, "int8"] + 0 for blk in problem.quantizable}
    for (tensor, mode), var in u.items():
        if mode.precision != "fp32":
            name = link_variable(tensor, mode.precision)
            q[name] = q.get(name, pulp.LpAffineExpression()) + var
    any_q = b.var("any")
    for v in q.values():
        b.add(any_q >= v)
    b.add(any_q <= pulp.lpSum(q.values()))
    terms = [poly.intercept * any_q]
    for term in poly.terms:
        if not all(name in q for name in term.blocks):
            continue  # a variable that is never 1 keeps the monomial at 0
        if len(term.blocks) == 1:
            terms.append(term.coefficient * q[term.blocks[0]])
            continue
        both = b.var("and")
        for name in term.blocks:
            b.add(both <= q[name])
        b.add(both >= pulp.lpSum(q[name] for name in term.blocks) - (len(term.blocks) - 1))
        terms.append(term.coefficient * both)
    return pulp.lpSum(terms)
