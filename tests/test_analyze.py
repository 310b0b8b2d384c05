"""The LayerGraph: blocks, tensors, MACs, weights, coarsening and its JSON form."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

import synthetic
from qsplit.model import LayerGraph, analyze, build_node_graph, coarsen, load_model


def test_node_graph_of_branchy_model(model_dir: Path) -> None:
    _, graph = analyze(str(model_dir / "branchy.onnx"), granularity="node")
    assert graph.granularity == "node"
    assert len(graph.blocks) == 15
    conv = graph.block("/stem/conv/Conv")
    # 8 output channels · 16·16 positions · 3 input channels · 3·3 kernel
    assert conv.macs == 8 * 16 * 16 * 3 * 9
    assert conv.weight_bytes == (8 * 3 * 9 + 8) * 4
    assert graph.block("/head/fc/Gemm").macs == 5 * 8
    assert graph.block("/side/MatMul").macs == 5 * 6
    assert graph.block("/neck/pool/MaxPool").macs == 8 * 8 * 8 * 4
    assert graph.block("/body/Concat").macs == 0

    skip = graph.tensor_by_name["skip"]
    assert skip.is_model_output and skip.consumers == ("/neck/pool/MaxPool",)
    r1 = graph.tensor_by_name["r1"]
    assert r1.producer == "/stem/act/Relu"
    assert set(r1.consumers) == {"/body/Split", "/neck/Add"}
    assert r1.bytes == 8 * 16 * 16 * 4
    assert graph.tensor_by_name["x"].producer is None
    assert nx.is_directed_acyclic_graph(graph.dag)


def test_constant_nodes_are_weights_not_blocks(tmp_path: Path) -> None:
    """Weights stored as Constant nodes count as the readers' weights, like initializers."""
    plain = synthetic.branchy_cnn()
    _, reference = analyze(str(synthetic.save(plain, tmp_path / "p.onnx")), granularity="node")
    constants = synthetic.with_constant_nodes(plain)
    assert sum(n.op_type == "Constant" for n in constants.graph.node) == 8
    _, graph = analyze(str(synthetic.save(constants, tmp_path / "c.onnx")), granularity="node")
    assert graph.block_names == reference.block_names
    assert [b.weight_bytes for b in graph.blocks] == [b.weight_bytes for b in reference.blocks]
    assert {t.name for t in graph.tensors} == {t.name for t in reference.tensors}


def test_attention_matmul_pairs_count_both_products(model_dir: Path) -> None:
    _, graph = analyze(str(model_dir / "attention.onnx"), granularity="node")
    # Q·Kᵀ: (6×8)·(8×6) → 36 outputs × 8; A·V: (6×6)·(6×8) → 48 outputs × 6
    assert graph.block("/attn/qk/MatMul").macs == 36 * 8
    assert graph.block("/attn/av/MatMul").macs == 48 * 6
    assert graph.block("/attn/qk/MatMul").weight_bytes == 0


def test_block_granularity_groups_by_module_prefix(model_dir: Path) -> None:
    _, node_graph = analyze(str(model_dir / "branchy.onnx"), granularity="node")
    graph = coarsen(node_graph, max_block_macs_fraction=1.0)
    assert [b.name for b in graph.blocks] == ["stem", "body", "neck", "side", "head"]
    assert graph.total_macs == node_graph.total_macs
    assert graph.total_weight_bytes == node_graph.total_weight_bytes
    assert sorted(n for b in graph.blocks for n in b.onnx_nodes) == sorted(node_graph.block_names)
    assert graph.block("body").inputs == ("r1",)
    assert set(graph.tensor_by_name["r1"].consumers) == {"body", "neck"}
    assert "c2" not in graph.tensor_by_name  # internal to the body block
    assert nx.is_directed_acyclic_graph(graph.dag)


def test_modules_with_too_many_macs_are_split_one_level_deeper(model_dir: Path) -> None:
    _, node_graph = analyze(str(model_dir / "branchy.onnx"), granularity="node")
    graph = coarsen(node_graph, max_block_macs_fraction=0.3)
    names = [b.name for b in graph.blocks]
    # 'stem' (42 % of MACs) splits into its conv and act sub-modules; 'body' (55 %) into m.0,
    # m.1 and the nodes directly under it; small modules stay whole.
    assert {"stem/conv", "stem/act", "body/m.0", "body/m.1", "neck", "side", "head"} <= set(names)
    assert graph.total_macs == node_graph.total_macs
    assert nx.is_directed_acyclic_graph(graph.dag)


def test_anonymous_names_contract_chains(model_dir: Path) -> None:
    _, node_graph = analyze(str(model_dir / "branchy_anon.onnx"), granularity="node")
    graph = coarsen(node_graph)
    assert len(graph.blocks) < len(node_graph.blocks)
    first = graph.blocks[0]
    assert first.op_types == ("Conv", "Relu")  # a single-input/single-output chain
    assert nx.is_directed_acyclic_graph(graph.dag)


def test_interleaved_modules_are_split_not_cyclic(tmp_path: Path) -> None:
    """Module 'a' feeds 'b' which feeds 'a' again: grouping 'a' whole would be a cycle."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Relu", ["x"], ["t1"], "/a/r1"),
        helper.make_node("Sigmoid", ["t1"], ["t2"], "/b/s"),
        helper.make_node("Add", ["t2", "t1"], ["y"], "/a/add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "inter.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    _, coarse = analyze(str(path))
    assert [b.name for b in coarse.blocks] == ["a", "b", "a#2"]
    assert nx.is_directed_acyclic_graph(coarse.dag)


def test_unnamed_nodes_inside_a_module_join_it(tmp_path: Path) -> None:
    """Swin's shifted-window mask: unnamed Shape/Reshape nodes between parts of one module join
    the module instead of cutting it into pieces; an unnamed node between two modules does not."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Relu", ["x"], ["t1"], "/a/r1"),
        helper.make_node("Shape", ["t1"], ["s"], "Shape_7"),
        helper.make_node("Reshape", ["t1", "s"], ["t2"], "Reshape_8"),
        helper.make_node("Sigmoid", ["t2"], ["t3"], "/a/s"),
        helper.make_node("Add", ["t3", "t1"], ["t4"], "/a/add"),
        helper.make_node("Neg", ["t4"], ["t5"], "Neg_9"),
        helper.make_node("Relu", ["t5"], ["y"], "/b/r"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    path = tmp_path / "unnamed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    _, coarse = analyze(str(path))
    assert [b.name for b in coarse.blocks] == ["a", "Neg_9", "b"]
    assert coarse.block("a").op_types == ("Relu", "Shape", "Reshape", "Sigmoid", "Add")
    assert nx.is_directed_acyclic_graph(coarse.dag)


def test_json_round_trip_and_schema(model_dir: Path, tmp_path: Path) -> None:
    _, graph = analyze(str(model_dir / "branchy.onnx"))
    path = tmp_path / "g.json"
    graph.save(str(path))
    data = json.loads(path.read_text())
    assert data["kind"] == "layergraph" and data["schema_version"] == 1
    assert set(data["model"]) >= {"path", "sha256", "inputs", "outputs"}
    assert set(data["blocks"][0]) >= {"name", "onnx_nodes", "macs", "weight_bytes", "output_bytes"}
    assert set(data["tensors"][0]) >= {"name", "producer", "consumers", "shape", "dtype", "bytes"}
    assert LayerGraph.load(str(path)) == graph


def test_yolo11n_coarsens_to_a_few_dozen_blocks(yolo11n_path: Path) -> None:
    model = load_model(yolo11n_path)
    node_graph = build_node_graph(model)
    graph = coarsen(node_graph)
    assert len(node_graph.blocks) > 200
    assert 20 <= len(graph.blocks) <= 60
    assert graph.blocks[0].name == "model.0"
    # the detection head (~30 % of the MACs) is split into its branches
    assert any(b.name.startswith("model.23/cv2") for b in graph.blocks)
    assert max(b.macs for b in graph.blocks) < 0.125 * graph.total_macs
    assert graph.total_macs == node_graph.total_macs
    # YOLO11n at 640: about 3.2 GMACs (6.5 GFLOPs as Ultralytics reports them)
    assert 2.5e9 < graph.total_macs < 4.5e9
    assert 2.0e6 < graph.total_weight_bytes / 4 < 3.5e6  # ~2.6 M parameters
    assert nx.is_directed_acyclic_graph(graph.dag)


@pytest.mark.parametrize("granularity", ["node", "block"])
def test_cli_analyze_writes_json(model_dir: Path, tmp_path: Path, granularity: str) -> None:
    from typer.testing import CliRunner

    from qsplit.cli import app

    out = tmp_path / "graph.json"
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(model_dir / "attention_dyn.onnx"),
            "--input-shape",
            "x=2x6x8",
            "--granularity",
            granularity,
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "blocks" in result.output
    assert LayerGraph.load(str(out)).granularity == granularity


def test_cli_errors_are_one_line_exit_2(model_dir: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "qsplit", "analyze", str(model_dir / "attention_dyn.onnx")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--input-shape x=1x6x8" in result.stderr
