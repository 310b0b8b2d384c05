"""The cost model on hand-computed cases."""

from __future__ import annotations

from dataclasses import replace

import pytest
from plan_helpers import graph, infra, noise, profile

from qsplit.errors import AssignmentError
from qsplit.model import Tensor
from qsplit.plan import (
    QUANT_PARAMS_BYTES,
    Bounds,
    PlanningProblem,
    evaluate,
    overhead_s,
    violations,
    weight_bytes,
    wire_bytes,
)
from qsplit.profile import Overhead

# dev → edge: 1 MB/s, 5 ms; edge → dev: 2 MB/s, 5 ms; dev ↔ cloud: 10 MB/s, 50 ms.
INFRA = infra(
    [("dev", 2.0, 3.0, 10**6), ("edge", 5.0, 1.0, 10**6), ("cloud", 30.0, 0.5, 10**9)],
    [
        ("dev", "edge", 1e6, 0.005),
        ("edge", "dev", 2e6, 0.005),
        ("dev", "cloud", 10e6, 0.05),
        ("cloud", "dev", 10e6, 0.05),
    ],
)


def _problem(g, times, quantizable=(), **kwargs) -> PlanningProblem:
    profiles = {
        node: profile(node, {b: (t * scale, t * scale / 2) for b, t in times.items()})
        for node, scale in (("dev", 1.0), ("edge", 0.1), ("cloud", 0.05))
    }
    poly = noise(quantizable, 0.1, {(b,): 0.2 for b in quantizable}) if quantizable else None
    return PlanningProblem(g, INFRA, profiles, poly, **kwargs)


CHAIN = graph(
    {"a": 1000, "b": 400},
    [("x", None, ["a"], 4000, False), ("h", "a", ["b"], 8000, False), ("y", "b", [], 400, True)],
)


def test_chain_split_with_quantized_producer() -> None:
    problem = _problem(CHAIN, {"a": 0.1, "b": 0.2}, quantizable=("a", "b"))
    ev = evaluate(problem, {"a": "dev", "b": "edge"}, ["a"])
    send_h = 0.005 + (8000 // 4 + QUANT_PARAMS_BYTES) / 1e6  # a is int8: h goes quantized
    send_y = 0.005 + 400 / 2e6
    compute_dev, compute_edge = 0.05, 0.02
    assert ev.transfer_s == pytest.approx({("dev", "edge"): send_h, ("edge", "dev"): send_y})
    assert ev.transfer_bytes == {("dev", "edge"): 2008, ("edge", "dev"): 400}
    assert ev.latency_s == pytest.approx(compute_dev + compute_edge + send_h + send_y)
    assert ev.device_energy_j == pytest.approx(2.0 * compute_dev + 3.0 * send_h)
    assert ev.energy_j == pytest.approx(ev.device_energy_j + 5.0 * compute_edge + 1.0 * send_y)
    assert ev.noise == pytest.approx(0.1 + 0.2)
    # weights (a at int8: a quarter) + x, h on dev; b's weights + h and y (delivered) on edge
    assert ev.memory_bytes == pytest.approx(
        {"dev": 250 + 4000 + 8000 + 400, "edge": 400 + 8000 + 400, "cloud": 0}
    )
    chain_cp = evaluate(problem, {"a": "dev", "b": "edge"}, ["a"], "critical-path")
    assert chain_cp.latency_s == pytest.approx(ev.latency_s)  # a chain has no overlap


def test_quantization_saves_memory() -> None:
    problem = _problem(CHAIN, {"a": 0.1, "b": 0.2}, quantizable=("a",))
    fp32 = evaluate(problem, {"a": "dev", "b": "dev"})
    int8 = evaluate(problem, {"a": "dev", "b": "dev"}, ["a"])
    assert fp32.memory_bytes["dev"] - int8.memory_bytes["dev"] == pytest.approx(750)
    assert weight_bytes(1000, "int8") == 250


def test_model_input_goes_out_and_output_comes_back() -> None:
    problem = _problem(CHAIN, {"a": 0.1, "b": 0.2})
    ev = evaluate(problem, {"a": "cloud", "b": "cloud"})
    send_x, send_y = 0.05 + 4000 / 10e6, 0.05 + 400 / 10e6
    assert ev.transfer_s == pytest.approx({("dev", "cloud"): send_x, ("cloud", "dev"): send_y})
    assert ev.latency_s == pytest.approx(0.005 + 0.01 + send_x + send_y)
    assert ev.device_energy_j == pytest.approx(3.0 * send_x)
    assert ev.memory_bytes["dev"] == 4000 + 400


# x → a; a's output h fans out to b and c; b and c return their outputs.
FAN = graph(
    {"a": 0, "b": 0, "c": 0},
    [
        ("x", None, ["a"], 4000, False),
        ("h", "a", ["b", "c"], 20000, False),
        ("yb", "b", [], 400, True),
        ("yc", "c", [], 800, True),
    ],
)


def test_a_tensor_crosses_a_link_once_whatever_the_consumers() -> None:
    problem = _problem(FAN, {"a": 0.1, "b": 0.2, "c": 0.3})
    ev = evaluate(problem, {"a": "dev", "b": "edge", "c": "edge"})
    assert ev.transfer_bytes[("dev", "edge")] == 20000
    assert ev.transfer_s[("dev", "edge")] == pytest.approx(0.005 + 0.02)
    assert ev.transfer_s[("edge", "dev")] == pytest.approx(2 * 0.005 + 1200 / 2e6)


def test_critical_path_overlaps_branches_on_different_nodes() -> None:
    problem = _problem(FAN, {"a": 0.1, "b": 0.2, "c": 0.3})
    assignment = {"a": "dev", "b": "edge", "c": "cloud"}
    cp = evaluate(problem, assignment, latency_model="critical-path")
    to_edge, to_cloud = 0.005 + 20000 / 1e6, 0.05 + 20000 / 10e6
    back_b, back_c = 0.005 + 400 / 2e6, 0.05 + 800 / 10e6
    branch_b = 0.1 + to_edge + 0.02 + back_b
    branch_c = 0.1 + to_cloud + 0.015 + back_c
    assert cp.latency_s == pytest.approx(max(branch_b, branch_c))
    total = evaluate(problem, assignment, latency_model="sum")
    assert total.latency_s == pytest.approx(
        0.1 + 0.02 + 0.015 + to_edge + to_cloud + back_b + back_c
    )
    assert total.energy_j == pytest.approx(cp.energy_j)


def test_critical_path_serialises_one_node() -> None:
    problem = _problem(FAN, {"a": 0.1, "b": 0.2, "c": 0.3})
    on_device = {"a": "dev", "b": "dev", "c": "dev"}
    cp = evaluate(problem, on_device, latency_model="critical-path")
    assert cp.latency_s == pytest.approx(0.6)  # busiest node's compute, not the longest path
    assert cp.latency_s == pytest.approx(evaluate(problem, on_device).latency_s)


def test_wire_bytes_by_dtype() -> None:
    def tensor(dtype: str, size: int) -> Tensor:
        return Tensor("t", "a", ("b",), (1,), dtype, size)

    assert wire_bytes(tensor("float32", 4000), "int8") == 1000 + QUANT_PARAMS_BYTES
    assert wire_bytes(tensor("float16", 4000), "int8") == 2000 + QUANT_PARAMS_BYTES
    assert wire_bytes(tensor("int64", 4000), "int8") == 4000
    assert wire_bytes(tensor("float32", 4000), "fp32") == 4000


def test_violations_lists_each_broken_bound() -> None:
    problem = _problem(
        CHAIN,
        {"a": 0.1, "b": 0.2},
        quantizable=("a",),
        bounds=Bounds(noise_max=0.2, device_energy_budget_j=0.01),
    )
    ev = evaluate(problem, {"a": "dev", "b": "dev"}, ["a"])
    found = {v.constraint: v for v in violations(problem, ev)}
    assert set(found) == {"noise", "device-energy"}
    assert found["noise"].value == pytest.approx(0.3)
    assert found["device-energy"].bound == 0.01
    tiny = infra([("dev", 1, 1, 100)], [])
    small = PlanningProblem(CHAIN, tiny, {"dev": profile("dev", {"a": (1, None), "b": (1, None)})})
    assert [v.constraint for v in violations(small, evaluate(small, {"a": "dev", "b": "dev"}))] == [
        "memory:dev"
    ]


@pytest.mark.parametrize(
    ("assignment", "quantized", "error", "words"),
    [
        ({"a": "dev"}, (), AssignmentError, "misses 1 block"),
        ({"a": "dev", "b": "dev", "zz": "dev"}, (), AssignmentError, "unknown one"),
        ({"a": "dev", "b": "mars"}, (), AssignmentError, "unknown node"),
        ({"a": "dev", "b": "dev"}, ("b",), AssignmentError, "cannot be quantized"),
    ],
)
def test_bad_assignments(assignment, quantized, error, words) -> None:
    problem = _problem(CHAIN, {"a": 0.1, "b": 0.2}, quantizable=("a",))
    with pytest.raises(error, match=words):
        evaluate(problem, assignment, quantized)


def test_a_tensor_without_a_direct_link_is_relayed_hop_by_hop() -> None:
    # INFRA has no edge ↔ cloud link: h goes edge → dev → cloud, store-and-forward.
    problem = _problem(CHAIN, {"a": 0.1, "b": 0.2}, quantizable=("a",))
    ev = evaluate(problem, {"a": "edge", "b": "cloud"}, ["a"], "critical-path")
    size = 8000 // 4 + QUANT_PARAMS_BYTES
    x_in = 0.005 + 4000 / 1e6  # dev → edge
    edge_dev, dev_cloud = 0.005 + size / 2e6, 0.05 + size / 10e6
    y_back = 0.05 + 400 / 10e6  # cloud → dev, direct
    assert ev.transfer_s == pytest.approx(
        {("dev", "edge"): x_in, ("edge", "dev"): edge_dev, ("dev", "cloud"): dev_cloud,
         ("cloud", "dev"): y_back}
    )  # fmt: skip
    assert ev.transfer_bytes == {
        ("dev", "edge"): 4000, ("edge", "dev"): size, ("dev", "cloud"): size, ("cloud", "dev"): 400
    }  # fmt: skip
    # b starts once h has crossed both hops
    assert ev.latency_s == pytest.approx(x_in + 0.005 + edge_dev + dev_cloud + 0.01 + y_back)
    # energy: each hop at its sender's transmit power; the relaying device pays dev → cloud
    assert ev.device_energy_j == pytest.approx(3.0 * (x_in + dev_cloud))
    assert ev.energy_j == pytest.approx(
        ev.device_energy_j + 5.0 * 0.005 + 1.0 * edge_dev + 30.0 * 0.01 + 0.5 * y_back
    )
    # the relay holds h only in passing: memory counts where tensors are produced or read
    assert ev.memory_bytes["dev"] == 4000 + 400
    assert evaluate(problem, {"a": "edge", "b": "cloud"}, ["a"]).latency_s == pytest.approx(
        sum(ev.transfer_s.values()) + 0.005 + 0.01
    )


def test_each_destination_is_one_transfer_even_where_routes_share_a_hop() -> None:
    # h goes to b on dev and to c on cloud via dev: the edge → dev hop is crossed twice, once
    # per destination, as the runtime sends it (docs/planner.md, Routes).
    problem = _problem(FAN, {"a": 0.1, "b": 0.2, "c": 0.3})
    ev = evaluate(problem, {"a": "edge", "b": "dev", "c": "cloud"})
    assert ev.transfer_bytes == {
        ("dev", "edge"): 4000, ("edge", "dev"): 2 * 20000, ("dev", "cloud"): 20000,
        ("cloud", "dev"): 800
    }  # fmt: skip
    assert ev.transfer_s[("edge", "dev")] == pytest.approx(2 * (0.005 + 20000 / 2e6))


FIXED = Overhead(request_s=0.002, message_s=0.001, local_bandwidth_bytes_per_s=4e6)
"""Requester's fixed costs: 2 ms per request, 1 ms + bytes / 4 MB/s per local message."""


def _with_overhead(problem: PlanningProblem) -> PlanningProblem:
    profiles = dict(problem.profiles)
    profiles["dev"] = replace(profiles["dev"], overhead=FIXED)
    return replace(problem, profiles=profiles)


@pytest.mark.parametrize("latency_model", ["sum", "critical-path"])
def test_fixed_costs_charge_the_requests_local_messages(latency_model: str) -> None:
    problem = _problem(CHAIN, {"a": 0.1, "b": 0.2}, latency_model=latency_model)
    fixed = _with_overhead(problem)
    local_in, local_out = 0.001 + 4000 / 4e6, 0.001 + 400 / 4e6
    hop = FIXED.message_s
    cases = {  # assignment → the messages it needs besides the request itself
        ("dev", "dev"): local_in + local_out,  # inputs in, outputs back, both on the device
        ("dev", "edge"): local_in + 2 * hop,  # h to the edge, y back over edge → device
        ("edge", "dev"): local_out + 2 * hop,  # x to the edge, h back
        ("edge", "edge"): 2 * hop,  # x out, y back
    }
    for (a, b), local in cases.items():
        assignment = {"a": a, "b": b}
        plain, priced = evaluate(problem, assignment), evaluate(fixed, assignment)
        assert priced.latency_s == pytest.approx(plain.latency_s + 0.002 + local)
        assert overhead_s(fixed, assignment) == pytest.approx(0.002 + local)
        assert priced.energy_j == pytest.approx(plain.energy_j)  # bookkeeping, not energy


def test_a_quantized_output_goes_back_locally_at_its_wire_size() -> None:
    problem = _with_overhead(_problem(CHAIN, {"a": 0.1, "b": 0.2}, quantizable=("b",)))
    out = 0.001 + (400 // 4 + QUANT_PARAMS_BYTES) / 4e6
    hops = 2 * FIXED.message_s  # x to the edge, h back
    assert overhead_s(problem, {"a": "edge", "b": "dev"}, ["b"]) == pytest.approx(
        0.002 + hops + out
    )


def test_a_relayed_transfer_is_a_message_per_hop() -> None:
    line = infra(
        [("dev", 2.0, 3.0, 10**6), ("edge", 5.0, 1.0, 10**6), ("cloud", 30.0, 0.5, 10**9)],
        [(a, b, 1e6, 0.005) for a, b in (("dev", "edge"), ("edge", "dev"))]
        + [(a, b, 1e6, 0.005) for a, b in (("edge", "cloud"), ("cloud", "edge"))],
    )
    profiles = {
        n: profile(n, {"a": (0.1, None), "b": (0.1, None)}) for n in ("dev", "edge", "cloud")
    }
    profiles["dev"] = replace(profiles["dev"], overhead=Overhead(message_s=0.001))
    problem = PlanningProblem(CHAIN, line, profiles)
    assert overhead_s(problem, {"a": "cloud", "b": "cloud"}) == pytest.approx(4 * 0.001)


def test_a_profile_without_overhead_costs_nothing_extra() -> None:
    problem = _problem(CHAIN, {"a": 0.1, "b": 0.2})
    assert overhead_s(problem, {"a": "dev", "b": "dev"}) == 0.0
