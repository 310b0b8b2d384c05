"""A plan's link precision and codecs run on real agents: tensors cross as int8/fp16, compressed
on links, the outputs are the whole link-quantized model's, and the bytes on the wire are those
the compression table predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthetic
from agents import infra_for, running_agents
from conftest import random_feeds, session
from qsplit._codecs import compress
from qsplit.errors import InputError
from qsplit.model import analyze
from qsplit.profile import measure_compression, reference_values
from qsplit.quant import calibrate, link_quantized_proto, link_tensor_name
from qsplit.runtime import build_deployment, connect, quantized_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # ORT's quantization tooling

LINKS = {"r1": "int8", "a2": "fp16"}
CODECS = {"r1": "lz4", "a2": "zstd"}
ENCODED = {t: link_tensor_name(t, p) for t, p in LINKS.items()}
NODE = {"stem": "a", "body": "b"}
"""Stem on a, body on b, the rest on c: r1 crosses a→b and a→c, a2 (with c3) b→c."""


def test_link_precision_and_codecs_run_as_planned(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, graph = analyze(str(path))
    feeds = [random_feeds(model.proto, seed) for seed in range(3)]
    calibration = calibrate(model, feeds)
    whole = session(link_quantized_proto(model.proto, graph, LINKS, calibration))
    assignment = {b: NODE.get(b.split("/")[0], "c") for b in graph.block_names}
    # Without shared memory, as on the testbed: every tensor crosses a link.
    with running_agents("a", "b", "c", args=("--no-shared-memory",)) as agents:
        infra = infra_for(agents)
        deployment = build_deployment(
            path,
            assignment,
            infra,
            calibration=calibration,
            link_precision=LINKS,
            link_codec=CODECS,
        )
        by_node = {c.node: c for c in deployment.components}
        assert by_node["a"].outputs == (ENCODED["r1"],)
        assert by_node["a"].codecs == {ENCODED["r1"]: "lz4"}
        assert ENCODED["r1"] in by_node["a"].quant
        assert by_node["b"].codecs == {ENCODED["a2"]: "zstd"}
        with connect(deployment, infra, graph_optimization="disabled") as s:
            records = []
            for feed in feeds:
                outputs, record = s.infer_timed(feed)
                records.append(record)
                for name, want in zip(deployment.model_outputs, whole.run(None, feed), strict=True):
                    np.testing.assert_allclose(outputs[name], want, atol=1e-5, rtol=0)
            stats = s.stats()
    # What each link carried: the encoded tensor, compressed by its codec.
    encoded_model, encoded_graph = quantized_model(
        model, graph, (), calibration, link_precision=LINKS
    )
    sent = [reference_values(encoded_model, encoded_graph, f, ENCODED.values()) for f in feeds]
    for record, value in zip(records, sent, strict=True):
        r1, a2 = value[ENCODED["r1"]], value[ENCODED["a2"]]
        assert r1.dtype == np.uint8 and a2.dtype == np.float16
        hops = {(t.source, t.target): t.bytes for t in record.transfers}
        assert hops[("a", "b")] == hops[("a", "c")] == len(compress("lz4", r1.tobytes()))
        c3 = graph.tensor_by_name["c3"].bytes
        assert hops[("b", "c")] == len(compress("zstd", a2.tobytes())) + c3
    lz4_raw = sum(v[ENCODED["r1"]].nbytes for v in sent)
    assert stats["a"]["compressed"]["lz4_raw_bytes"] == 2 * lz4_raw  # to b and to c
    assert stats["a"]["compressed"]["lz4_wire_bytes"] == sum(
        2 * len(compress("lz4", v[ENCODED["r1"]].tobytes())) for v in sent
    )
    assert stats["b"]["compressed"]["zstd_raw_bytes"] == sum(v[ENCODED["a2"]].nbytes for v in sent)
    # ... which the compression table, measured on the same values, predicts.
    table = measure_compression(graph, reference_values(model, graph, feeds[0]), calibration)
    first = {(t.source, t.target): t.bytes for t in records[0].transfers}
    predicted_r1 = table.ratio("r1", "int8", "lz4") * graph.tensor_by_name["r1"].bytes / 4
    predicted_a2 = table.ratio("a2", "fp16", "zstd") * graph.tensor_by_name["a2"].bytes / 2
    assert first[("a", "b")] == pytest.approx(predicted_r1, rel=0.02)
    c3 = graph.tensor_by_name["c3"].bytes
    assert first[("b", "c")] - c3 == pytest.approx(predicted_a2, rel=1e-9)


def test_an_fp32_plan_with_codecs_is_bit_exact(tmp_path: Path) -> None:
    """Lossless codecs alone change bytes on the wire, never values."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, graph = analyze(str(path))
    feed = random_feeds(model.proto, 0)
    assignment = {b: NODE.get(b.split("/")[0], "c") for b in graph.block_names}
    with running_agents("a", "b", "c", args=("--no-shared-memory",)) as agents:
        infra = infra_for(agents)
        deployment = build_deployment(path, assignment, infra, link_codec={"r1": "zstd"})
        with connect(deployment, infra, graph_optimization="disabled") as s:
            outputs, record = s.infer_timed(feed)
    for name, want in zip(
        deployment.model_outputs, session(model.proto).run(None, feed), strict=True
    ):
        np.testing.assert_array_equal(outputs[name], want)
    hops = {(t.source, t.target): t.bytes for t in record.transfers}
    r1 = reference_values(model, graph, feed, ["r1"])["r1"]
    assert hops[("a", "b")] == len(compress("zstd", r1.tobytes())) < r1.nbytes


def test_link_codecs_must_name_model_tensors_and_known_codecs(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    _, graph = analyze(str(path))
    assignment = dict.fromkeys(graph.block_names, "device")
    with pytest.raises(InputError, match=r"2 link codec.*'gzip'.*'nope'"):
        build_deployment(path, assignment, infra_for({}), link_codec={"r1": "gzip", "nope": "lz4"})


def test_a_plan_file_deploys_its_link_precision_and_codecs_beside_quantized_blocks(
    tmp_path: Path,
) -> None:
    """``load_deployment`` (what ``qsplit run``/``deploy`` use) takes both link fields from the
    plan, composed with its quantized blocks: the quantized block's output crosses as its own
    int8, the link-quantized tensor as the link's."""
    from agents import AgentProcess
    from qsplit._jsonio import read_json, write_json
    from qsplit.runtime import load_deployment
    from test_runtime_cli import write_plan

    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, graph = analyze(str(path))
    calibration = calibrate(model, [random_feeds(model.proto, seed) for seed in range(2)])
    assignment = {b: NODE.get(b.split("/")[0], "c") for b in graph.block_names}
    plan = write_plan(tmp_path / "plan.json", path, assignment, quantized=["body/m.1/conv"])
    body = {k: v for k, v in read_json(plan, "plan", (1,)).items() if k not in ("kind",)}
    body.update(link_precision={"r1": "int8"}, link_codec={"r1": "lz4", "c3": "zstd"})
    write_json(plan, "plan", 1, body)
    agents = {n: AgentProcess(n, f"127.0.0.1:{7900 + i}", None) for i, n in enumerate("abc")}
    deployment = load_deployment(plan, infra_for(agents), path, calibration=calibration)
    by_node = {c.node: c for c in deployment.components}
    assert by_node["a"].outputs == (ENCODED["r1"],)
    assert by_node["a"].codecs == {ENCODED["r1"]: "lz4"}
    assert deployment.quantized == ("body/m.1/conv",)
    (c3,) = [t for t in by_node["b"].outputs if t.startswith("c3")]
    assert c3 != "c3" and c3 in by_node["b"].quant  # the quantized block's own int8 output
    assert by_node["b"].codecs == {c3: "zstd"}


def test_a_relay_forwards_a_compressed_tensor_compressed(tmp_path: Path) -> None:
    """Where a and c have no direct link, b stores and forwards r1: both hops carry it
    compressed, and c decodes the same values."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    model, graph = analyze(str(path))
    feed = random_feeds(model.proto, 0)
    assignment = {b: "a" if b.startswith("stem/") else "c" for b in graph.block_names}
    links = (("device", "a"), ("device", "c"), ("a", "b"), ("b", "c"))
    with running_agents("a", "b", "c", args=("--no-shared-memory",)) as agents:
        infra = infra_for(agents, links=links)
        deployment = build_deployment(path, assignment, infra, link_codec={"r1": "lz4"})
        assert deployment.relays[("a", "c")] == ("b",)
        with connect(deployment, infra, graph_optimization="disabled") as s:
            outputs, record = s.infer_timed(feed)
            relayed = s.stats()["b"]["compressed"]
    whole = session(model.proto).run(None, feed)
    for name, want in zip(deployment.model_outputs, whole, strict=True):
        np.testing.assert_array_equal(outputs[name], want)
    r1 = reference_values(model, graph, feed, ["r1"])["r1"]
    packed = len(compress("lz4", r1.tobytes()))
    hops = {(t.source, t.target): t.bytes for t in record.transfers}
    assert hops[("a", "b")] == hops[("b", "c")] == packed
    assert relayed == {"lz4_raw_bytes": r1.nbytes, "lz4_wire_bytes": packed}
