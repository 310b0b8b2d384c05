"""Which transfers an unanswered request waits on: the components that can bound a link."""

from __future__ import annotations

import pytest

from qsplit.runtime import ComponentSpec, Deployment
from qsplit.runtime._awaited import SLACK_FACTOR, Expectations


def component(name: str, node: str, inputs: tuple[str, ...], outputs: tuple[str, ...]):
    return ComponentSpec(name, node, inputs, outputs, b"", "", {}, (), compute_s=0.1)


def deployment(*components: ComponentSpec, relays=None) -> Deployment:
    return Deployment(
        id="d",
        components=components,
        model_inputs={"x": ("edge",)},
        model_outputs=("y",),
        input_specs=(),
        addresses={},
        relays=relays or {},
    )


def latency(source: str, target: str) -> float:
    return 0.01


def test_a_component_fed_by_the_requester_waits_once_the_inputs_are_sent() -> None:
    expect = Expectations(deployment(component("c0", "edge", ("x",), ("y",))), "device")
    assert expect.due({}, None, {"x": 1000}, {}, latency) == {}  # not sent yet
    (wait,) = expect.due({}, 5.0, {"x": 1000}, {}, latency).values()
    assert (wait.source, wait.target, wait.bytes, wait.since) == ("device", "edge", 1000, 5.0)
    assert wait.slack_s == pytest.approx(SLACK_FACTOR * 0.1 + 0.02)
    assert expect.due({"c0": 6.0}, 5.0, {"x": 1000}, {}, latency) == {}  # answered


def test_a_component_fed_from_another_node_waits_on_its_producer_and_learnt_bytes() -> None:
    chain = deployment(
        component("c0", "device", ("x",), ("a",)), component("c1", "cloud", ("a",), ("y",))
    )
    expect = Expectations(chain, "device")
    link = {("device", "cloud"): 4000}
    assert expect.due({}, 1.0, {"x": 10}, link, latency) == {}  # c0 has not reported
    assert expect.due({"c0": 2.0}, 1.0, {"x": 10}, {}, latency) == {}  # size not learnt yet
    (wait,) = expect.due({"c0": 2.0}, 1.0, {"x": 10}, link, latency).values()
    assert (wait.source, wait.target, wait.bytes, wait.since) == ("device", "cloud", 4000, 2.0)


def test_inputs_from_two_nodes_or_through_a_relay_give_no_bound() -> None:
    two = deployment(
        component("c0", "device", ("x",), ("a",)),
        component("c1", "cloud", ("x",), ("b",)),
        component("c2", "edge", ("a", "b"), ("y",)),
    )
    reported = {"c0": 1.0, "c1": 1.0}
    due = Expectations(two, "device").due(reported, 1.0, {"x": 10}, {}, latency)
    assert "c2" not in due
    relayed = deployment(
        component("c0", "cloud", ("x",), ("y",)), relays={("device", "cloud"): ("edge",)}
    )
    assert Expectations(relayed, "device").due({}, 1.0, {"x": 10}, {}, latency) == {}
