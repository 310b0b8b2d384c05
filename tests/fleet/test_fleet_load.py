"""The ``fleet:`` section: the shipped example, and every problem listed with field and fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import qsplit
from qsplit.errors import InputError
from qsplit.fleet import fleet_from_dict, load_fleet, validate_fleet
from qsplit.infra import load_infra

EXAMPLE = Path(qsplit.__file__).parent / "examples" / "fleet.yaml"


def _example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def test_example_loads() -> None:
    fleet = load_fleet(EXAMPLE)
    assert [c.name for c in fleet.classes] == ["cameras", "phones", "boards"]
    assert fleet.shared_names == ("edge", "cloud")
    assert fleet.replicas("cloud") == 48
    assert fleet.device_count == 500
    phones = fleet.device_class("phones")
    assert phones.rate_hz == 0.5 and phones.node.reference_time_s == pytest.approx(0.3)
    assert phones.node.role == "device"
    runtimes = {c.name: c.runtime for c in fleet.classes}
    assert runtimes == {"cameras": "agent", "phones": "ray", "boards": "ray"}
    assert fleet.scaled(1000).device_class("cameras").runtime == "agent"
    infra = fleet.class_infra("cameras")
    assert infra.device == "cameras"
    assert set(infra.node_names) == {"cameras", "edge", "cloud"}
    # cameras have no cloud link: they reach it through the edge, over the file's backbone
    assert infra.route("cameras", "cloud").via == ("edge",)
    assert infra.link("cameras", "edge").bandwidth_bytes_per_s == 20e6


def test_single_device_view_still_reads_the_file() -> None:
    """Today's loader accepts the fleet file (and ignores the section)."""
    assert load_infra(EXAMPLE).device == "device"


def test_file_without_fleet_section() -> None:
    data = _example()
    del data["fleet"]
    problems = validate_fleet(data)
    assert [p.field for p in problems] == ["fleet"]
    assert "examples/fleet.yaml" in problems[0].fix


def _problems(edit) -> list[str]:
    data = copy.deepcopy(_example())
    edit(data["fleet"])
    return [str(p) for p in validate_fleet(data)]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda f: f["classes"][0].update(rate_hz=0),
            "fleet.classes[0].rate_hz: input should be greater than 0",
        ),
        (
            lambda f: f["classes"][1].update(count="many"),
            "fleet.classes[1].count: input should be a valid integer",
        ),
        (
            lambda f: f["classes"][0].update(reference_time="fast"),
            "fleet.classes[0].reference_time",
        ),
        (lambda f: f["classes"][0].update(colour="red"), "fleet.classes[0].colour: unknown field"),
        (
            lambda f: f["shared"][0].update(replicas=0),
            "fleet.shared[0].replicas: input should be greater than or equal to 1. "
            "Fix: give the number of identical replicas",
        ),
        (lambda f: f["shared"][0].update(node="fog"), "fleet.shared[0].node: unknown node 'fog'"),
        (
            lambda f: f["shared"][0].update(node="device"),
            "fleet.shared[0].node: 'device' is a device",
        ),
        (
            lambda f: f["shared"].append({"node": "edge"}),
            "fleet.shared[2].node: 'edge' is listed twice",
        ),
        (
            lambda f: f["classes"][2].update(name="phones"),
            "fleet.classes[2].name: duplicate class name 'phones'",
        ),
        (
            lambda f: f["classes"][2].update(name="edge"),
            "fleet.classes[2].name: 'edge' is also a node's name",
        ),
        (
            lambda f: f["classes"][0]["links"][0].update(to="phones"),
            "does not join 'cameras' to a shared node",
        ),
        (
            lambda f: f["classes"][2]["links"][0].update(symmetric=False),
            "class 'boards' cannot hear from shared node 'edge'",
        ),
        (lambda f: f.pop("classes"), "fleet.classes: field required"),
        (
            lambda f: f["classes"][1].update(runtime="docker"),
            "fleet.classes[1].runtime: input should be 'ray' or 'agent'. Fix: use `ray` (devices "
            "run Ray) or `agent`",
        ),
    ],
)
def test_every_problem_names_field_and_fix(edit, expected: str) -> None:
    problems = _problems(edit)
    assert any(expected in p for p in problems), problems
    assert all("Fix: " in p for p in problems)


def test_all_problems_at_once() -> None:
    def edit(f: dict[str, Any]) -> None:
        f["classes"][0]["rate_hz"] = -1
        f["classes"][1]["name"] = "edge"
        f["shared"][1]["node"] = "nowhere"

    problems = _problems(edit)
    assert len(problems) == 3, problems


def test_error_names_the_file(tmp_path: Path) -> None:
    data = _example()
    data["fleet"]["classes"][0]["count"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        InputError,
        match=r"bad\.yaml: 1 problem\(s\) in the fleet description:\n"
        r"  - fleet\.classes\[0\]\.count",
    ):
        load_fleet(path)
    path.write_text("fleet: [\n")
    with pytest.raises(InputError, match="not valid YAML at line"):
        load_fleet(path)


def test_scaled_keeps_shares() -> None:
    fleet = fleet_from_dict(_example())
    scaled = fleet.scaled(1000)
    assert [c.count for c in scaled.classes] == [600, 300, 100]
    assert sum(c.count for c in fleet.scaled(7).classes) == 7
