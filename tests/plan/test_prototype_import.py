"""The prototype importer on the real published data (skipped where it is not beside the repo)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qsplit.errors import InputError
from qsplit.infra import load_infra
from qsplit.model import LayerGraph
from qsplit.profile import ComputeProfile
from qsplit.prototype import PrototypeImport, import_prototype
from qsplit.quant import NoisePolynomial

PROTOTYPE = Path(__file__).parents[2].parent / "shared" / "reference" / "prototype"
MODEL_PROFILE = PROTOTYPE / "results" / "Model_Profile" / "yolo11x-seg.json"

pytestmark = pytest.mark.skipif(
    not MODEL_PROFILE.is_file(),
    reason=f"prototype reference data not found at {PROTOTYPE} (shared/ beside the repo)",
)


@pytest.fixture(scope="module")
def node_level() -> PrototypeImport:
    return import_prototype(PROTOTYPE)


@pytest.fixture(scope="module")
def block_level() -> PrototypeImport:
    return import_prototype(PROTOTYPE, granularity="block")


def test_graph_has_every_onnx_node_as_a_block(node_level: PrototypeImport) -> None:
    graph = node_level.graph
    # 654 prototype graph nodes = 652 ONNX nodes + the virtual InputGenerator/OutputReceiver,
    # which qsplit expresses as model inputs/outputs instead of blocks.
    assert len(graph.blocks) == 652
    assert len(graph.tensors) == 667
    assert graph.granularity == "node"
    inputs = [t for t in graph.tensors if t.producer is None]
    assert [t.name for t in inputs] == ["images"]
    assert inputs[0].bytes == 1 * 3 * 640 * 640 * 4  # 4.6875 "MB" = MiB
    assert {t.name for t in graph.tensors if t.is_model_output} == {"output0", "output1"}


def test_tensor_bytes_match_every_link_of_the_prototype(node_level: PrototypeImport) -> None:
    raw = json.loads(MODEL_PROFILE.read_text())["graph"]
    tensors = node_level.graph.tensor_by_name
    for link in raw["links"]:
        listed = sum(tensors[name].bytes for name in link["tensor_name_list"])
        assert listed == round(link["tot_tensor_size"] * 2**20)
        for name in link["tensor_name_list"]:
            if link["target"] != "OutputReceiver":
                assert link["target"] in tensors[name].consumers
    for block in node_level.graph.blocks:
        assert block.output_bytes == sum(tensors[t].bytes for t in block.outputs)
    weights_mb = sum(n["weights_size"] for n in raw["nodes"])
    assert node_level.graph.total_weight_bytes == pytest.approx(weights_mb * 2**20, abs=700)


def test_blocks_are_in_topological_order(node_level: PrototypeImport) -> None:
    graph = node_level.graph
    for producer, consumer in graph.dag.edges:
        assert graph.position(producer) < graph.position(consumer)


def test_profiles_cover_every_block_on_every_node(node_level: PrototypeImport) -> None:
    assert set(node_level.profiles) == {"device", "edge", "cloud"}
    for profile in node_level.profiles.values():
        assert set(profile.blocks) == set(node_level.graph.block_names)
        assert profile.model_sha256 == node_level.graph.model.sha256
        assert all(t.fp32_s > 0 for t in profile.blocks.values())
    device = node_level.profiles["device"]
    assert device.settings["cpus"] == 1.0  # the published setup, not the 0.5-CPU run
    assert sum(t.fp32_s for t in device.blocks.values()) == pytest.approx(6.295, abs=1e-3)
    quantizable = set(node_level.noise.quantizable)
    for profile in node_level.profiles.values():
        assert {b for b, t in profile.blocks.items() if t.int8_s is not None} == quantizable


def test_noise_terms_refer_to_known_quantizable_blocks(node_level: PrototypeImport) -> None:
    noise = node_level.noise
    known = set(node_level.graph.block_names)
    assert len(noise.quantizable) == 12
    assert set(noise.quantizable) <= known
    assert len(noise.terms) == 298
    assert all(set(t.blocks) <= set(noise.quantizable) for t in noise.terms)
    assert noise.degree == 3
    assert noise.predict(()) == 0.0
    one = noise.quantizable[0]
    assert noise.predict([one]) > 0


def test_saved_files_load_back(node_level: PrototypeImport, tmp_path: Path) -> None:
    node_level.save(tmp_path)
    assert LayerGraph.load(str(tmp_path / "layergraph.json")) == node_level.graph
    assert NoisePolynomial.load(str(tmp_path / "noise.json")) == node_level.noise
    for node, profile in node_level.profiles.items():
        assert ComputeProfile.load(str(tmp_path / "profiles" / f"{node}.json")) == profile
    loaded = load_infra(tmp_path / "infra.yaml")
    assert (loaded.nodes, loaded.links) == (node_level.infra.nodes, node_level.infra.links)


def test_infra_is_the_published_scenario(node_level: PrototypeImport) -> None:
    infra = node_level.infra
    assert infra.device == "device"
    egress = {"device": 5, "edge": 20, "cloud": 100}
    one_way_ms = {"edge": 5, "cloud": 55}
    for link in infra.links:
        assert link.bandwidth_bytes_per_s == egress[link.source] * 2**20
        pair = {link.source, link.target}
        expected = 50 if pair == {"edge", "cloud"} else one_way_ms[(pair - {"device"}).pop()]
        assert link.latency_s == pytest.approx(expected / 1000)
    assert [n.compute_power_w for n in infra.nodes] == [2.9165, 5.833, 35.0]
    assert [n.transmit_power_w for n in infra.nodes] == [3.507, 2.265, 0.014]


def test_coarsened_import_keeps_the_totals(
    node_level: PrototypeImport, block_level: PrototypeImport
) -> None:
    fine, coarse = node_level, block_level
    assert coarse.graph.granularity == "block"
    assert len(coarse.graph.blocks) < len(fine.graph.blocks) / 5
    assert coarse.graph.total_weight_bytes == fine.graph.total_weight_bytes
    for node, profile in coarse.profiles.items():
        assert set(profile.blocks) == set(coarse.graph.block_names)
        fine_total = sum(t.fp32_s for t in fine.profiles[node].blocks.values())
        assert sum(t.fp32_s for t in profile.blocks.values()) == pytest.approx(fine_total)
    known = set(coarse.graph.block_names)
    assert all(set(t.blocks) <= known for t in coarse.noise.terms)
    assert coarse.noise.predict(coarse.noise.quantizable) == pytest.approx(
        fine.noise.predict(fine.noise.quantizable)
    )


def _copy_prototype(tmp_path: Path) -> Path:
    root = tmp_path / "prototype"
    (root / "results").mkdir(parents=True)
    shutil.copy(PROTOTYPE / "energy_config.ini", root)
    for sub in ("Model_Profile", "Exec_Profile"):
        shutil.copytree(PROTOTYPE / "results" / sub, root / "results" / sub)
    return root


def test_wrong_directory_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no results/ directory") as info:
        import_prototype(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_unknown_model_lists_the_available_ones() -> None:
    with pytest.raises(InputError, match=r"available: .*yolo11x-seg"):
        import_prototype(PROTOTYPE, "yolo99")


def test_missing_exec_profile_names_the_file(tmp_path: Path) -> None:
    root = _copy_prototype(tmp_path)
    (root / "results" / "Exec_Profile" / "Edge_yolo11x-seg_1.0_exec_profile.json").unlink()
    with pytest.raises(InputError, match=r"Edge_yolo11x-seg_<cpus>_exec_profile\.json"):
        import_prototype(root)


def test_ambiguous_exec_profile_asks_for_cpus(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--cpus Client="):
        import_prototype(PROTOTYPE, cpus={"Client": 2.0})
    half = import_prototype(PROTOTYPE, cpus={"Client": 0.5})
    assert half.profiles["device"].settings["cpus"] == 0.5


def test_missing_power_names_section_and_key(tmp_path: Path) -> None:
    root = _copy_prototype(tmp_path)
    ini = root / "energy_config.ini"
    ini.write_text(ini.read_text().replace("TRANS_ENERGY_PER_SEC = 2.265\n", ""))
    with pytest.raises(InputError, match=r"\[edge\]: missing TRANS_ENERGY_PER_SEC"):
        import_prototype(root)


def test_cli_import_then_pareto_end_to_end(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qsplit.cli import app
    from qsplit.plan import ParetoFront

    runner = CliRunner()
    data = tmp_path / "imported"
    result = runner.invoke(
        app, ["import-prototype", str(PROTOTYPE), "--granularity", "block", "--out", str(data)]
    )
    assert result.exit_code == 0, result.output
    assert "block granularity" in result.output
    result = runner.invoke(
        app,
        [
            "pareto",
            *("--graph", str(data / "layergraph.json"), "--infra", str(data / "infra.yaml")),
            *("--profiles", str(data / "profiles"), "--noise", str(data / "noise.json")),
            *("--noise-max", "0.1", "--points", "2", "--out-dir", str(tmp_path / "front")),
        ],
    )
    assert result.exit_code == 0, result.output
    front = ParetoFront.load(tmp_path / "front" / "pareto.json")
    assert front.points and (tmp_path / "front" / "pareto.png").is_file()
    assert all(p.noise <= 0.1 + 1e-9 for p in front.points)
