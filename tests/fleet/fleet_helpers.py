"""Small fleets built in code (no ONNX): device classes, shared nodes and hand-made candidates."""

from __future__ import annotations

import math
import random

from qsplit.fleet import Candidate, Choice, DeviceClass, Fleet, FleetProblem, SharedNode, Work
from qsplit.infra import Infra, Link, Node


def fleet(classes: list[tuple[str, int, float]], shared: list[tuple[str, int]]) -> Fleet:
    """Classes as ``(name, count, rate_hz)``, shared nodes as ``(name, replicas)``; every class
    linked to every shared node (the links do not enter the fleet model: candidates carry the
    prices)."""
    nodes = [Node("device", "device", 1.0, 1.0, 2**30)]
    nodes += [Node(name, "edge", 10.0, 1.0, 2**34) for name, _ in shared]
    links = [Link("device", n, 1e7, 0.001) for n, _ in shared]
    links += [Link(n, "device", 1e7, 0.001) for n, _ in shared]
    infra = Infra("device", tuple(nodes), tuple(links))
    device_classes = []
    for name, count, rate in classes:
        own = [Link(name, n, 1e7, 0.001) for n, _ in shared]
        own += [Link(n, name, 1e7, 0.001) for n, _ in shared]
        node = Node(name, "device", 1.0, 1.0, 2**30)
        device_classes.append(DeviceClass(name, count, rate, node, tuple(own)))
    return Fleet(infra, tuple(device_classes), tuple(SharedNode(n, r) for n, r in shared))


def candidate(
    label: str,
    latency_s: float,
    energy_j: float,
    device_busy_s: float,
    work: list[tuple[str, str, float, float]] = (),  # type: ignore[assignment]
) -> Candidate:
    """``work`` as ``(node, component name, fixed_s, per_item_s)``."""
    return Candidate(
        label=label,
        assignment={},
        latency_s=latency_s,
        energy_j=energy_j,
        device_energy_j=energy_j,
        device_busy_s=device_busy_s,
        work=tuple(Work(node, (block,), f, p, 20.0) for node, block, f, p in work),
    )


def random_problem(seed: int, objective: str = "latency-energy") -> FleetProblem:
    """2–3 classes, 1–2 shared nodes, 2–3 candidates each; components shared between classes
    so that batching across classes matters; batches close at a short or long time-out, or
    only full."""
    rng = random.Random(seed)
    shared = [("edge", rng.choice([1, 2, 4]))] + (
        [("cloud", rng.choice([2, 8]))] * rng.randint(0, 1)
    )
    classes = [
        (f"c{i}", rng.randint(5, 60), rng.choice([0.2, 0.5, 1.0])) for i in range(rng.randint(2, 3))
    ]
    f = fleet(classes, shared)
    components = [f"part{i}" for i in range(3)]
    candidates = {}
    for name, _, _ in classes:
        cands = [candidate("device-only", rng.uniform(0.3, 1.2), rng.uniform(1, 3), 0.0)]
        cands[0] = candidate(
            "device-only", cands[0].latency_s, cands[0].energy_j, cands[0].latency_s * 0.5
        )
        for j in range(rng.randint(1, 2)):
            node = rng.choice([n for n, _ in shared])
            t1 = rng.uniform(0.005, 0.05)
            fixed = t1 * rng.choice([0.0, 0.3, 0.7])
            work = [(node, rng.choice(components), fixed, t1 - fixed)]
            cands.append(
                candidate(
                    f"offload{j}",
                    rng.uniform(0.1, 0.6),
                    rng.uniform(0.5, 4),
                    rng.uniform(0, 0.2),
                    work,
                )
            )
        candidates[name] = tuple(cands)
    return FleetProblem(
        f,
        candidates,
        objective,  # type: ignore[arg-type]
        w_latency=rng.choice([0.2, 0.5, 1.0]),
        w_energy=rng.choice([0.0, 0.5]),
        utilisation_max=rng.choice([0.6, 0.8, 0.9]),
        batch_wait_s=rng.choice([0.05, 0.5, math.inf]),  # short, long, full batches only
    )


TIER_SCENARIOS = (
    "spaced, time-out shorter than the spacing",
    "spaced, time-out longer than the spacing",
    "spaced and Poisson in one batcher",
    "spaced, long time-out",
    "batched twice",
)
"""Two tiers: requests leave a 1-replica edge (deterministic 30 ms at batch 1, ρ ≈ 0.6) for a
3-replica cloud that batches them (docs/fleet.md, *Arrivals through the tiers*)."""


def tier_scenario(name: str) -> tuple[FleetProblem, Choice]:
    """One of :data:`TIER_SCENARIOS`: the fleet, its one candidate per class and the choice."""
    edge_then_cloud = [("edge", "e", 0.0, 0.03), ("cloud", "c", 0.05, 0.02)]
    classes = [("a", 40, 0.5)]
    cands = {"a": (candidate("tiers", 0.3, 1.0, 0.0, edge_then_cloud),)}
    batch, timeout = {"edge": 1, "cloud": 4}, 0.02
    if name == "spaced, time-out longer than the spacing":
        timeout = 0.1
    elif name == "spaced and Poisson in one batcher":
        classes.append(("b", 20, 0.5))  # straight to the cloud's component
        cands["b"] = (candidate("cloud", 0.3, 1.0, 0.0, [edge_then_cloud[1]]),)
        timeout = 0.05
    elif name == "spaced, long time-out":
        timeout = 0.5
    elif name == "batched twice":
        cands["a"] = (
            candidate("tiers", 0.3, 1.0, 0.0, [("edge", "e", 0.02, 0.01), edge_then_cloud[1]]),
        )
        batch, timeout = {"edge": 4, "cloud": 4}, 0.05
    elif name != "spaced, time-out shorter than the spacing":
        raise AssertionError(name)
    problem = FleetProblem(
        fleet(classes, [("edge", 1), ("cloud", 3)]),
        cands,
        utilisation_max=0.9,
        batch_wait_s=timeout,
    )
    return problem, Choice(dict.fromkeys(cands, 0), batch)


def random_tier_problem(seed: int) -> tuple[FleetProblem, Choice]:
    """A random two-tier fleet: class ``a`` through a 1–2-replica edge (ρ 0.3–0.8 at batch 1,
    batch 1–4) to a cloud batching at 2–8, and half the time class ``b`` straight to the
    cloud, into ``a``'s batcher or its own; time-outs 10 ms to 1 s; the cloud's replicas
    enough for ρ ≤ 0.8 at batch 1 (so at any batch size)."""
    rng = random.Random(seed)
    edge_replicas = rng.choice([1, 1, 2])
    edge_s, cloud_s = rng.uniform(0.01, 0.05), rng.uniform(0.02, 0.1)
    edge_fixed, cloud_fixed = edge_s * rng.choice([0.0, 0.5]), cloud_s * rng.choice([0.3, 0.6])
    batch = {"edge": rng.choice([1, 1, 2, 4]), "cloud": rng.choice([2, 4, 8])}
    timeout = rng.choice([0.01, 0.03, 0.1, 0.3, 1.0])
    rate = rng.uniform(0.3, 0.8) * edge_replicas / edge_s
    cloud = ("cloud", "c", cloud_fixed, cloud_s - cloud_fixed)
    classes = [("a", 50, rate / 50)]
    cands = {
        "a": (
            candidate(
                "tiers", 0.3, 1.0, 0.0, [("edge", "e", edge_fixed, edge_s - edge_fixed), cloud]
            ),
        )
    }
    if rng.random() < 0.5:
        classes.append(("b", 50, rate * rng.uniform(0.2, 1.0) / 50))
        own = cloud if rng.random() < 0.5 else ("cloud", "d", *cloud[2:])
        cands["b"] = (candidate("cloud", 0.3, 1.0, 0.0, [own]),)
    cloud_replicas = max(2, math.ceil(sum(50 * r for _, _, r in classes) * cloud_s / 0.8))
    problem = FleetProblem(
        fleet(classes, [("edge", edge_replicas), ("cloud", cloud_replicas)]),
        cands,
        utilisation_max=0.9,
        batch_wait_s=timeout,
    )
    return problem, Choice(dict.fromkeys(cands, 0), batch)
