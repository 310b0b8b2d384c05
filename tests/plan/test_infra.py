"""Infrastructure files: units, the shipped examples, and every validation problem listed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import qsplit
from qsplit.errors import InputError
from qsplit.infra import (
    Infra,
    Link,
    Node,
    infra_from_dict,
    load_infra,
    parse_bandwidth,
    parse_duration,
    parse_memory,
    validate_infra,
)
from qsplit.model import SPEC_SUFFIX

EXAMPLES = Path(qsplit.__file__).parent / "examples"


@pytest.mark.parametrize(
    ("text", "bytes_per_s"),
    [
        ("5MB/s", 5e6),
        ("40Mbit/s", 5e6),
        ("1.5GB/s", 1.5e9),
        ("100kB/s", 1e5),
        ("10MiB/s", 10 * 2**20),
        ("8bit/s", 1.0),
        ("100Mbps", 12.5e6),
        (" 2 MB/s ", 2e6),
        (5000000, 5e6),
        (2.5e6, 2.5e6),
    ],
)
def test_bandwidth_units(text: object, bytes_per_s: float) -> None:
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize(
    ("text", "seconds"), [("5ms", 0.005), ("0.5s", 0.5), ("200us", 2e-4), ("1e3ns", 1e-6), (0, 0)]
)
def test_duration_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "size"), [("4GiB", 4 * 2**30), ("512MB", 512e6), (1024, 1024)])
def test_memory_units(text: object, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["5", 5, "fast", "5 parsecs", True, None, "5 ms/s"])
def test_duration_needs_a_known_unit(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["5MB", "5 furlongs/s", "MB/s", [], "nan"])
def test_bandwidth_rejects_nonsense(text: object) -> None:
    with pytest.raises(ValueError):
        parse_bandwidth(text)


def test_three_tier_example_matches_the_papers() -> None:
    infra = load_infra(EXAMPLES / "three-tier.yaml")
    assert infra.device == "device"
    assert infra.node_names == ("device", "edge", "cloud")
    one_way = {("device", "edge"): 0.005, ("device", "cloud"): 0.055, ("edge", "cloud"): 0.050}
    egress = {"device": 5e6, "edge": 20e6, "cloud": 100e6}
    for (a, b), latency in one_way.items():
        for source, target in ((a, b), (b, a)):
            link = infra.link(source, target)
            assert link.latency_s == pytest.approx(latency)
            assert link.bandwidth_bytes_per_s == egress[source]
    device = infra.node("device")
    assert (device.compute_power_w, device.transmit_power_w) == (2.9165, 3.507)
    assert infra.node("edge").compute_power_w == 5.833
    assert infra.node("cloud").transmit_power_w == 0.014
    assert infra.node("cloud").memory_bytes == 64 * 2**30
    assert infra.link("device", "edge").transfer_s(5e6) == pytest.approx(1.005)


INFRA_EXAMPLES = sorted(
    p
    for p in EXAMPLES.glob("*.yaml")
    if not p.name.endswith(SPEC_SUFFIX) and not p.stem.endswith("-schedule")
)
"""The model descriptions (``*.preprocess.yaml``) and testbed schedules (``*-schedule.yaml``)
beside them are other formats."""


@pytest.mark.parametrize("path", INFRA_EXAMPLES, ids=lambda p: p.stem)
def test_every_example_loads_and_a_2_core_vm_can_emulate_it(path: Path) -> None:
    """docs/testbed.md promises that every example runs on a host whose YOLO11n takes up to
    160 ms with one thread (a 2-core CI VM takes ~100-140 ms)."""
    infra = load_infra(path)
    assert infra.device == "device"
    for node in infra.nodes:
        assert node.reference_time_s is not None and node.reference_time_s >= 0.160, node


def test_the_demo_scenario_can_be_emulated_at_half_speed() -> None:
    """The demo's testbed must start on a CI VM running at half speed too (bench_host_speed)."""
    infra = load_infra(EXAMPLES / "three-tier.yaml")
    assert min(n.reference_time_s or 0 for n in infra.nodes) >= 0.300


def test_reference_time_is_a_duration() -> None:
    data = _valid()
    data["nodes"] = [_node("dev", "device", reference_time="1.2s"), _node("edge")]
    infra = infra_from_dict(data)
    assert infra.node("dev").reference_time_s == pytest.approx(1.2)
    assert infra.node("edge").reference_time_s is None
    for bad in ("0ms", "1.2", "fast"):
        data["nodes"] = [_node("dev", "device", reference_time=bad), _node("edge")]
        assert _fields(data) == ["nodes[0].reference_time"], bad


def test_a_speed_factor_is_refused_with_how_to_convert_it(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(
        "schema_version: 1\ndevice: dev\nnodes:\n"
        "  - {name: dev, role: device, compute_power_w: 1, transmit_power_w: 1,"
        " memory_bytes: 1GiB, speed_factor: 10.0}\n"
    )
    with pytest.raises(InputError) as info:
        load_infra(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 1 problem(s)")
    assert "nodes[0].speed_factor: speed_factor (times slower than the machine" in message
    assert "Fix: describe the node absolutely with `reference_time`" in message
    assert "speed_factor × the YOLO11n time" in message


def test_device_behind_edge_example_reaches_the_cloud_through_the_edge() -> None:
    infra = load_infra(EXAMPLES / "device-behind-edge.yaml")
    assert not infra.has_link("device", "cloud") and not infra.has_link("cloud", "device")
    up, down = infra.route("device", "cloud"), infra.route("cloud", "device")
    assert up.via == down.via == ("edge",)
    assert up.transfer_s(0) == down.transfer_s(0) == pytest.approx(0.055)
    assert up.transfer_s(1e6) == pytest.approx(0.055 + 1e6 / 5e6 + 1e6 / 20e6)
    assert down.transfer_s(1e6) == pytest.approx(0.055 + 1e6 / 100e6 + 1e6 / 20e6)


def _node(name: str, role: str = "edge", **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "role": role,
        "compute_power_w": 1.0,
        "transmit_power_w": 1.0,
        "memory_bytes": "1GiB",
        **extra,
    }


def _link(a: str, b: str, **extra: object) -> dict[str, object]:
    return {"from": a, "to": b, "bandwidth": "5MB/s", "latency": "5ms", **extra}


def _valid() -> dict[str, object]:
    return {
        "schema_version": 1,
        "device": "dev",
        "nodes": [_node("dev", "device"), _node("edge")],
        "links": [_link("dev", "edge", symmetric=True)],
    }


def test_symmetric_adds_the_reverse_link() -> None:
    infra = infra_from_dict(_valid())
    assert infra.has_link("edge", "dev")
    assert infra.link("edge", "dev").latency_s == 0.005


def test_missing_link_and_unknown_node_are_named() -> None:
    data = _valid()
    data["nodes"] = [*data["nodes"], _node("cloud", "cloud")]  # type: ignore[list-item]
    data["links"] = [_link("dev", "edge", symmetric=True), _link("dev", "cloud", symmetric=True)]
    infra = infra_from_dict(data)
    with pytest.raises(InputError, match="no link from 'edge' to 'cloud'"):
        infra.link("edge", "cloud")
    with pytest.raises(InputError, match="unknown node 'fog'"):
        infra.node("fog")


def _fields(data: object) -> list[str]:
    return [p.field for p in validate_infra(data)]


def test_every_problem_is_listed_at_once() -> None:
    data = {
        "schema_version": 2,
        "device": "dev",
        "nodes": [
            _node("dev", "device", reference_time="-1ms"),
            _node("edge", memory_bytes="4XB", compute_power_w=-1),
            _node("edge", address="nowhere"),
            _node("island"),
        ],
        "links": [
            _link("dev", "edge", bandwidth="-5MB/s"),
            _link("edge", "dev", bandwidth=0, latency=5),
            _link("dev", "cloud"),
            _link("edge", "edge"),
            _link("dev", "edge", colour="red"),
            {"from": "edge", "to": "dev", "latency": "1ms"},
        ],
    }
    fields = _fields(data)
    for expected in [
        "schema_version",
        "nodes[0].reference_time",
        "nodes[1].memory_bytes",
        "nodes[1].compute_power_w",
        "nodes[2].address",
        "nodes[2].name",  # duplicate
        "nodes[3]",  # unreachable
        "links[0].bandwidth",
        "links[1].bandwidth",
        "links[1].latency",
        "links[2].to",
        "links[3]",  # self link
        "links[4].colour",
        "links[4]",  # duplicate direction
        "links[5].bandwidth",  # missing
    ]:
        assert expected in fields, expected
    with pytest.raises(InputError) as info:
        infra_from_dict(data, source="infra.yaml")
    message = str(info.value)
    assert message.startswith("infra.yaml: ")
    assert f"{len(fields)} problem(s)" in message
    assert "links[0].bandwidth" in message and "Fix:" in message


def test_problems_follow_the_file_order() -> None:
    data = {**_valid(), "links": [_link("dev", "edge", bandwidth=0), _link("edge", "dev")]}
    data["nodes"] = [_node("dev", "device", compute_power_w="x"), _node("edge")]
    assert _fields(data) == ["nodes[0].compute_power_w", "links[0].bandwidth"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"device": "phone"}, "device", "not among the nodes"),
        ({"device": None}, "device", ""),
        ({"nodes": []}, "nodes", ""),
        ({"links": [_link("dev", "edge")]}, "nodes[1]", "cannot send back to 'dev'"),
        ({"links": [_link("edge", "dev")]}, "nodes[1]", "cannot receive from 'dev'"),
        ({"links": [_link("dev", "edge", latency="5")]}, "links[0].latency", "has no unit"),
    ],
)
def test_single_problems(change: dict[str, object], field: str, words: str) -> None:
    data = {**_valid(), **change}
    if change.get("device") is None and "device" in change:
        del data["device"]
    problems = validate_infra(data)
    assert field in [p.field for p in problems]
    assert any(words in p.problem for p in problems if p.field == field)


def test_device_role_must_be_device() -> None:
    data = _valid()
    data["nodes"] = [_node("dev", "edge"), _node("edge")]
    assert _fields(data) == ["nodes[0].role"]


def test_reachable_through_another_node_is_enough() -> None:
    data = _valid()
    data["nodes"] = [_node("dev", "device"), _node("edge"), _node("cloud", "cloud")]
    data["links"] = [_link("dev", "edge", symmetric=True), _link("edge", "cloud", symmetric=True)]
    assert validate_infra(data) == ()


def _chain(**extra: object) -> dict[str, object]:
    """dev ↔ edge ↔ cloud, no direct dev ↔ cloud link: a device behind an edge gateway."""
    data = _valid()
    data["nodes"] = [_node("dev", "device"), _node("edge"), _node("cloud", "cloud")]
    data["links"] = [
        _link("dev", "edge", symmetric=True),
        _link("edge", "cloud", symmetric=True, latency="50ms", bandwidth="20MB/s"),
    ]
    return {**data, **extra}


def test_a_transfer_without_a_link_follows_the_route_through_other_nodes() -> None:
    infra = infra_from_dict(_chain())
    route = infra.route("dev", "cloud")
    assert route.via == ("edge",)
    assert [(h.source, h.target) for h in route.hops] == [("dev", "edge"), ("edge", "cloud")]
    # store-and-forward: each hop's latency plus the bytes at that hop's bandwidth
    hops = route.hop_s(1e6)
    assert [s for _, s in hops] == pytest.approx([0.005 + 1e6 / 5e6, 0.05 + 1e6 / 20e6])
    assert route.transfer_s(1e6) == pytest.approx(0.205 + 0.1)
    assert infra.route("cloud", "dev").via == ("edge",)
    assert infra.route("dev", "edge").via == ()  # a direct link is a route of one hop


def test_shortest_route_is_least_latency_then_fewest_hops_then_names() -> None:
    data = _chain()
    data["nodes"] = [*data["nodes"], _node("fog"), _node("alp")]  # type: ignore[list-item]
    data["links"] = [
        *data["links"],  # type: ignore[misc]
        # dev → cloud: 2 ms via fog or via alp beat 55 ms via edge; the tie goes to the names
        _link("dev", "fog", latency="1ms"),
        _link("fog", "cloud", latency="1ms"),
        _link("dev", "alp", latency="1ms"),
        _link("alp", "cloud", latency="1ms"),
        # cloud → dev: 20 + 20 + 15 ms ties 50 + 5 ms via edge; fewer hops win
        _link("cloud", "fog", latency="20ms"),
        _link("fog", "alp", latency="20ms"),
        _link("alp", "dev", latency="15ms"),
    ]
    infra = infra_from_dict(data)
    assert infra.route("dev", "cloud").via == ("alp",)
    assert infra.route("cloud", "dev").via == ("edge",)
    # a direct link is used whatever the latency of a path around it
    data["links"] = [*data["links"], _link("cloud", "dev", latency="900ms")]
    assert infra_from_dict(data).route("cloud", "dev").via == ()


def test_an_explicit_via_pins_the_route() -> None:
    data = _chain()
    data["links"] = [*data["links"], _link("dev", "cloud", latency="55ms", symmetric=True)]
    assert infra_from_dict(data).route("dev", "cloud").via == ()
    data["routes"] = [{"from": "dev", "to": "cloud", "via": ["edge"], "symmetric": True}]
    infra = infra_from_dict(data)
    assert infra.route("dev", "cloud").via == ("edge",)
    assert infra.route("cloud", "dev").via == ("edge",)
    assert infra.route("edge", "dev").via == ()


@pytest.mark.parametrize(
    ("route", "field", "words"),
    [
        ({"from": "dev", "to": "cloud", "via": ["fog"]}, "routes[0].via[0]", "unknown node 'fog'"),
        ({"from": "dev", "to": "mars", "via": ["edge"]}, "routes[0].to", "unknown node 'mars'"),
        ({"from": "dev", "to": "cloud", "via": []}, "routes[0].via", "no link dev → cloud"),
        (
            {"from": "edge", "to": "cloud", "via": ["dev"]},
            "routes[0].via",
            "no link dev → cloud on the route edge → dev → cloud",
        ),
        ({"from": "dev", "to": "cloud", "via": ["edge", "dev"]}, "routes[0]", "a node twice"),
        ({"from": "dev", "to": "cloud", "via": "edge"}, "routes[0].via", "list"),
        ({"from": "dev", "to": "cloud", "over": ["edge"]}, "routes[0].over", "unknown field"),
    ],
)
def test_a_bad_route_is_named(route: dict[str, object], field: str, words: str) -> None:
    problems = validate_infra(_chain(routes=[route]))
    assert field in [p.field for p in problems], problems
    assert any(words in p.problem for p in problems if p.field == field), problems


def test_a_symmetric_route_needs_the_reverse_links_and_one_route_per_direction() -> None:
    data = _chain()
    data["links"] = [
        _link("dev", "edge", symmetric=True),
        _link("edge", "cloud"),
        _link("cloud", "dev"),
    ]
    data["routes"] = [{"from": "dev", "to": "cloud", "via": ["edge"], "symmetric": True}]
    assert [(p.field, p.problem) for p in validate_infra(data)] == [
        ("routes[0].symmetric", "no link cloud → edge on the route cloud → edge → dev")
    ]
    data = _chain(routes=[{"from": "dev", "to": "cloud", "via": ["edge"]}] * 2)
    assert _fields(data) == ["routes[1]"]


def test_a_node_without_a_route_back_is_named_with_file_field_and_fix(tmp_path: Path) -> None:
    data = _chain()
    data["links"] = [_link("dev", "edge", symmetric=True), _link("edge", "cloud")]
    path = tmp_path / "behind-edge.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as info:
        load_infra(path)
    message = str(info.value)
    assert str(path) in message and "nodes[2]:" in message and "Fix: add links" in message
    assert "node 'cloud' cannot send back to 'dev'" in message


A_PUBLIC_KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
"""A valid Z85 CURVE key (the one ZeroMQ's CURVE documentation uses as an example)."""


def test_a_curve_public_key_is_read_as_given(tmp_path: Path) -> None:
    data = _valid()
    data["nodes"][1]["curve_public_key"] = A_PUBLIC_KEY
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(data))
    infra = load_infra(path)
    assert infra.node("edge").curve_public_key == A_PUBLIC_KEY
    assert infra.node("dev").curve_public_key is None


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("abc", "a CURVE key has 40 characters, this one 3"),
        ("~" * 40, "'~' are not Z85 characters"),
        ("#" * 40, "characters 0–4 do not encode four bytes"),
        (12345, "expected a quoted string of 40 characters, got int"),
    ],
)
def test_a_bad_curve_key_is_named_with_file_field_and_fix(
    tmp_path: Path, key: object, words: str
) -> None:
    data = _valid()
    data["nodes"][1]["curve_public_key"] = key
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as info:
        load_infra(path)
    message = str(info.value)
    assert f"{path}: 1 problem(s)" in message
    assert f"nodes[1].curve_public_key: {words}" in message
    assert "qsplit keys generate" in message


def test_route_between_unconnected_nodes_is_an_input_error() -> None:
    infra = Infra(
        device="dev",
        nodes=(Node("dev", "device", 1, 1, 1), Node("edge", "edge", 1, 1, 1)),
        links=(Link("dev", "edge", 1e6, 0.0),),
    )
    assert infra.has_route("dev", "edge") and not infra.has_route("edge", "dev")
    with pytest.raises(InputError, match=r"no route from 'edge' to 'dev'.*Fix: add links"):
        infra.route("edge", "dev")


def test_not_a_mapping() -> None:
    assert _fields(["a", "b"]) == ["(top level)"]


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "infra.yaml"
    path.write_text("schema_version: 1\ndevice: dev\nnodes:\n  - {name: dev, role: device\n")
    with pytest.raises(InputError, match=r"infra\.yaml: not valid YAML at line \d+"):
        load_infra(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the file"):
        load_infra(tmp_path / "nope.yaml")


def test_public_api_is_importable_and_public() -> None:
    import qsplit.infra

    for name in qsplit.infra.__all__:
        assert not name.startswith("_")
        assert getattr(qsplit.infra, name) is not None
