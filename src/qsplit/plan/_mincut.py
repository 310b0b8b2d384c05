"""DADS-style placement: the minimum s–t cut between the device and one other node.

With two nodes and the sum latency model, every plan is a cut of the block DAG and its price is
the cut's capacity (DADS, Hu et al. 2019): the source side runs on the device, the sink side on
the other node. Capacities, for a block ``i`` and a tensor ``t``:

* ``s → i``: price of running ``i`` on the other node (cut when ``i`` leaves the device);
* ``i → t_sink``: price of running ``i`` on the device;
* a tensor is sent once per direction however many consumers read it, so each tensor gets two
  auxiliary vertices: ``producer → fwd_t`` (price of sending device → node) with uncapacitated
  ``fwd_t → consumer`` edges, and ``back_t → producer`` (price of sending node → device) with
  uncapacitated ``consumer → back_t`` edges. A model input's producer is the source; a model
  output's reader is the source too (the device receives it).

The cut is then exactly the plan's price, so the minimum cut is the optimal two-node plan
(without quantization; networkx's preflow-push finds it in polynomial time).
"""

from __future__ import annotations

import networkx as nx

from qsplit.plan._linear import LinearPrices

_SOURCE = ("source",)
_SINK = ("sink",)


def min_cut_assignment(prices: LinearPrices, node: str) -> dict[str, str]:
    """The cheapest placement of every block on either the device or ``node``."""
    graph, device = prices.problem.graph, prices.device
    flow = nx.DiGraph()
    flow.add_node(_SOURCE)
    flow.add_node(_SINK)
    for name in graph.block_names:
        flow.add_edge(_SOURCE, name, capacity=prices.block(name, node).objective)
        flow.add_edge(name, _SINK, capacity=prices.block(name, device).objective)
    for tensor in graph.tensors:
        producer = tensor.producer if tensor.producer is not None else _SOURCE
        forward = ("fwd", tensor.name)
        flow.add_edge(producer, forward, capacity=prices.tensor(tensor, device, [node]).objective)
        for consumer in tensor.consumers:
            flow.add_edge(forward, consumer)  # no capacity attribute: uncapacitated
        if tensor.producer is None:
            continue  # a model input never travels back to the device
        backward = ("back", tensor.name)
        flow.add_edge(backward, producer, capacity=prices.tensor(tensor, node, [device]).objective)
        for consumer in tensor.consumers:
            flow.add_edge(consumer, backward)
        if tensor.is_model_output:
            flow.add_edge(_SOURCE, backward)
    _, (device_side, _) = nx.minimum_cut(flow, _SOURCE, _SINK)
    return {b: device if b in device_side else node for b in graph.block_names}
