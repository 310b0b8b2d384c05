"""Routes between nodes without a direct link: the path a transfer takes through other nodes.

The infrastructure file lists direct links, and a transfer between two linked nodes takes their
link. Where two nodes have none, a transfer follows a path of links through intermediate nodes
that store and forward it. The default path is the **shortest**: least total one-way latency,
then fewest hops, then the alphabetically first sequence of node names, so the choice never
depends on dictionary order. Latencies are compared in whole nanoseconds: ``5 ms + 50 ms`` and
``20 ms + 20 ms + 15 ms`` tie exactly, and the path with fewer hops wins, instead of
floating-point rounding picking one. Bandwidth is left out on purpose: which path is fastest for
a tensor depends on its size, and a route has to be one path for every tensor; an explicit
``via`` in the file picks another one.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qsplit.infra._types import Link

Path = tuple[str, ...]
"""Node names from the sender to the receiver, both included."""


def shortest_paths(nodes: Sequence[str], links: Iterable[Link]) -> dict[tuple[str, str], Path]:
    """The shortest path (module docstring) of every ordered pair that has one."""
    leaving: dict[str, list[tuple[str, int]]] = {n: [] for n in nodes}
    for link in links:
        leaving[link.source].append((link.target, round(link.latency_s * 1e9)))
    paths: dict[tuple[str, str], Path] = {}
    for source in nodes:
        # Dijkstra on (latency ns, hops, path): each part grows with every hop, so the order
        # of whole keys is kept by extending a path, and the first key popped is the least.
        queue: list[tuple[int, int, Path]] = [(0, 0, (source,))]
        done: set[str] = set()
        while queue:
            latency_ns, hops, path = heapq.heappop(queue)
            node = path[-1]
            if node in done:
                continue
            done.add(node)
            if node != source:
                paths[source, node] = path
            for target, ns in leaving[node]:
                if target not in done:
                    heapq.heappush(queue, (latency_ns + ns, hops + 1, (*path, target)))
    return paths
