"""DADS-style placement: the minimum s–t cut between the device and one other node.

With two nodes and the sum latency model, every plan is a cut of the block DAG and its price is
the cut's capacity (DADS, Hu et al. 2019): the source side runs on the device, the sink side on
the other node. Capacities, for a block ``i`` and a tensor ``t``:

* ``s → i``: price of running ``i`` on the other node (cut when ``i`` leaves the device);
* ``i → sink``: price of running ``i`` on the device;
* forward, ``t`` is sent device → node once however many of its readers sit on the node: with
  one reader an edge ``producer → reader``, with several an auxiliary vertex ``fwd_t`` behind
  ``producer → fwd_t`` and uncapacitated ``fwd_t → reader`` edges;
* backward (node → device) the same with reversed edges and ``back_t``; a model output is also
  read by the device, i.e. by the source. A model input's producer is the source;
* the requester's local messages (:func:`qsplit.plan.overhead_s`): ``i → sink`` for a block
  producing a model output, and ``reader → sink`` (through ``local_t`` for several readers) for
  a model input, cut when the block, or any reader, stays on the device.

The cut is then exactly the plan's price, so the minimum cut is the optimal two-node plan
(without quantization; networkx's preflow-push finds it in polynomial time).
"""

from __future__ import annotations

from collections.abc import Hashable

import networkx as nx

from qsplit.plan._linear import LinearPrices

_SOURCE = ("source",)
_SINK = ("sink",)


def min_cut_assignment(prices: LinearPrices, node: str) -> dict[str, str]:
    """The cheapest placement of every block on either the device or ``node``."""
    graph, device = prices.problem.graph, prices.device
    capacity: dict[tuple[Hashable, Hashable], float] = {}
    unbounded: list[tuple[Hashable, Hashable]] = []

    def charge(tail: Hashable, head: Hashable, price: float) -> None:
        capacity[tail, head] = capacity.get((tail, head), 0.0) + price

    def fan(tail: Hashable, heads: list[Hashable], price: float, aux: Hashable, back: bool) -> None:
        """Charge ``price`` once if any of ``heads`` is cut from ``tail`` (edges reversed if
        ``back``)."""
        if len(heads) == 1:
            charge(*((heads[0], tail) if back else (tail, heads[0])), price)
            return
        charge(*((aux, tail) if back else (tail, aux)), price)
        unbounded.extend((h, aux) if back else (aux, h) for h in heads)

    for name in graph.block_names:
        charge(_SOURCE, name, prices.block(name, node).objective)
        charge(name, _SINK, prices.block(name, device).objective)
    for tensor in graph.tensors:
        producer = tensor.producer if tensor.producer is not None else _SOURCE
        readers: list[Hashable] = list(dict.fromkeys(tensor.consumers))
        if readers:
            forward = prices.tensor(tensor, device, [node]).objective
            fan(producer, readers, forward, ("fwd", tensor.name), back=False)
        local = prices.local_message(tensor).objective
        if tensor.producer is None:
            if readers and not tensor.is_model_output:  # returned as an output: always paid
                fan(_SINK, readers, local, ("local", tensor.name), back=True)
            continue  # a model input never travels back to the device
        if tensor.is_model_output:
            charge(producer, _SINK, local)
            readers.append(_SOURCE)
        if readers:
            backward = prices.tensor(tensor, node, [device]).objective
            fan(producer, readers, backward, ("back", tensor.name), back=True)

    flow = nx.DiGraph()
    flow.add_edges_from((u, v, {"capacity": c}) for (u, v), c in capacity.items())
    flow.add_edges_from(unbounded)  # no capacity attribute: uncapacitated
    flow.add_nodes_from((_SOURCE, _SINK))
    _, (device_side, _) = nx.minimum_cut(flow, _SOURCE, _SINK)
    return {b: device if b in device_side else node for b in graph.block_names}
