"""Absolute node speeds: the host's reference time and the padding factor node / host."""

from __future__ import annotations

import pytest

from qsplit.errors import InputError
from qsplit.infra import Infra, Node
from qsplit.profile import (
    FACTOR_TOLERANCE,
    HEADROOM,
    HostReference,
    measure_host,
    node_factors,
)
from qsplit.profile import padding_factor as factor_of


def _host(time_s: float, whole_s: float | None = None) -> HostReference:
    return HostReference(
        time_s=time_s, statistic="min", runs=7, threads=1, blocks=34, whole_s=whole_s
    )


def _infra(**references: float | None) -> Infra:
    nodes = tuple(
        Node(name, "device" if i == 0 else "edge", 1.0, 1.0, 2**30, reference_time_s=reference)
        for i, (name, reference) in enumerate(references.items())
    )
    return Infra(device=nodes[0].name, nodes=nodes, links=(), source="infra.yaml")


def test_the_factor_is_the_node_time_over_the_host_time() -> None:
    infra = _infra(device=1.0, edge=0.425, cloud=0.1)
    assert node_factors(infra, _host(0.1)) == pytest.approx(
        {"device": 10.0, "edge": 4.25, "cloud": 1.0}
    )
    # The same nodes on a host twice as fast get twice the padding: the node stays the node.
    assert node_factors(infra, _host(0.05)) == pytest.approx(
        {"device": 20.0, "edge": 8.5, "cloud": 2.0}
    )


def test_a_host_slightly_slower_than_a_node_emulates_it_at_its_own_speed() -> None:
    slower = 0.1 / (1.0 - FACTOR_TOLERANCE / 2)
    assert factor_of(_infra(device=0.1), "device", _host(slower)) == 1.0


def test_a_host_too_slow_for_a_node_is_refused_with_both_times_and_the_fix() -> None:
    infra = _infra(device=1.0, edge=0.1)
    with pytest.raises(InputError) as info:
        node_factors(infra, _host(0.25))
    message = str(info.value)
    assert message.startswith("infra.yaml: nodes[1].reference_time: this host is too slow")
    assert "node 'edge'" in message and "100 ms" in message and "250 ms" in message
    assert "Fix: run on a host at least as fast as the node" in message
    assert "reference_time ≥ 250ms" in message


def test_a_node_without_headroom_over_the_hosts_whole_runs_is_refused_with_the_fixes() -> None:
    # Block minima say 0.2 s (factor 1.5 for the cloud), but whole runs take 0.28 s here:
    # a 0.3 s node has 7 % to spare, less than the headroom, so its long runs would overshoot.
    infra = _infra(device=1.0, cloud=0.3)
    assert 0.28 * (1 + HEADROOM) > 0.3
    with pytest.raises(InputError) as info:
        node_factors(infra, _host(0.2, whole_s=0.28))
    message = str(info.value)
    assert message.startswith("infra.yaml: nodes[1].reference_time: this host has too little")
    assert "node 'cloud'" in message and "300 ms" in message and "280 ms" in message
    assert "least of 9 runs of the whole model" in message
    assert f"reference_time ≥ {0.28 * (1 + HEADROOM) * 1e3:.0f}ms" in message
    assert "dilation" in message


def test_a_node_with_headroom_is_padded_by_the_block_minima() -> None:
    # The headroom only decides whether a node can be emulated; the factor stays node / blocks.
    infra = _infra(device=1.0, cloud=0.3)
    factors = node_factors(infra, _host(0.2, whole_s=0.3 / (1 + HEADROOM) * 0.99))
    assert factors == pytest.approx({"device": 5.0, "cloud": 1.5})


def test_a_node_without_a_reference_time_cannot_be_emulated() -> None:
    with pytest.raises(InputError, match=r"nodes\[1\].reference_time: node 'edge' has no"):
        node_factors(_infra(device=1.0, edge=None), _host(0.1))


def test_the_host_is_measured_block_by_block_with_the_statistic_asked_for() -> None:
    host = measure_host("min", runs=3)
    assert (host.statistic, host.runs, host.threads, host.blocks) == ("min", 3, 1, 34)
    # YOLO11n fp32 at 640×640 takes tens to hundreds of ms on any CPU qsplit runs on.
    assert 0.005 < host.time_s < 5.0
    assert "sum of its 34 blocks, each the min of 3 runs" in host.describe()
    assert host.whole_s is None
    assert HostReference.from_dict(host.to_dict()) == host


def test_a_state_file_written_before_the_whole_runs_still_reads() -> None:
    old = {"time_s": 0.1, "statistic": "min", "runs": 20, "threads": 1, "blocks": 34}
    assert HostReference.from_dict(old) == _host(0.1).__class__(**old)
    assert HostReference.from_dict(old).whole_s is None
