"""Time dilation: the same scenario k× slower in every node and link, everything else kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsplit.errors import InputError
from qsplit.infra import load_infra
from qsplit.testbed import dilated_infra

INFRA = """\
schema_version: 1
device: device
nodes:
  - {name: device, role: device, compute_power_w: 3, transmit_power_w: 3.5,
     memory_bytes: 4GiB, reference_time: 1s, address: "127.0.0.1:7101"}
  - {name: edge, role: edge, compute_power_w: 6, transmit_power_w: 2, memory_bytes: 16GiB,
     reference_time: 425ms}
  - {name: cloud, role: cloud, compute_power_w: 35, transmit_power_w: 0.1, memory_bytes: 64GiB}
links:
  - {from: device, to: edge, bandwidth: 5MB/s, latency: 5ms, symmetric: true}
  - {from: edge, to: cloud, bandwidth: 40Mbit/s, latency: 50ms}
  - {from: cloud, to: edge, bandwidth: 100MB/s, latency: 0ms}
"""


@pytest.fixture
def infra(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(INFRA)
    return path


def test_every_node_and_link_is_k_times_slower_and_nothing_else_changes(
    infra: Path, tmp_path: Path
) -> None:
    written = dilated_infra(infra, 2.5, tmp_path / "dilated")
    assert written == tmp_path / "dilated" / "scenario.yaml"
    original, dilated = load_infra(infra), load_infra(written)
    for node in original.nodes:
        slow = dilated.node(node.name)
        expected = None if node.reference_time_s is None else node.reference_time_s * 2.5
        assert slow.reference_time_s == pytest.approx(expected)
        assert (slow.compute_power_w, slow.transmit_power_w, slow.memory_bytes, slow.address) == (
            node.compute_power_w,
            node.transmit_power_w,
            node.memory_bytes,
            node.address,
        )
    links = {(lk.source, lk.target): lk for lk in dilated.links}
    assert len(links) == len(original.links) == 4  # the symmetric entry stays one entry of two
    for link in original.links:
        slow = links[link.source, link.target]
        assert slow.latency_s == pytest.approx(link.latency_s * 2.5)
        assert slow.bandwidth_bytes_per_s == pytest.approx(link.bandwidth_bytes_per_s / 2.5)
    # A transfer of any size takes 2.5× as long on every route.
    for k, h in (("device", "cloud"), ("cloud", "device")):
        assert dilated.route(k, h).transfer_s(1e6) == pytest.approx(
            2.5 * original.route(k, h).transfer_s(1e6)
        )
    assert "time dilated 2.5x" in written.read_text().splitlines()[0]


def test_factor_one_is_the_file_itself(infra: Path, tmp_path: Path) -> None:
    assert dilated_infra(infra, 1.0, tmp_path / "dilated") == infra
    assert not (tmp_path / "dilated").exists()


@pytest.mark.parametrize("factor", [0.5, 0.0, float("nan"), float("inf")])
def test_a_factor_that_would_speed_up_or_is_not_a_number_is_refused(
    infra: Path, tmp_path: Path, factor: float
) -> None:
    with pytest.raises(InputError, match=r"dilation: time dilation factor .* is not a number ≥ 1"):
        dilated_infra(infra, factor, tmp_path)


def test_a_bad_file_is_reported_against_itself(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(INFRA.replace("latency: 5ms", "latency: 5"))
    with pytest.raises(InputError, match=r"bad\.yaml"):
        dilated_infra(bad, 2.0, tmp_path / "out")
