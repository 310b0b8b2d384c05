"""Link precision and compression in the cost model, by hand, and in plans and plan files."""

from __future__ import annotations

from dataclasses import replace

import pytest
from plan_helpers import graph, infra, noise, profile

from qsplit.errors import AssignmentError
from qsplit.plan import (
    QUANT_PARAMS_BYTES,
    Bounds,
    LinkMode,
    Plan,
    PlanningProblem,
    evaluate,
    plan,
)
from qsplit.profile import CodecCost, CodecTimes, CompressionTable
from qsplit.quant import link_variable

# dev → edge at 1 MB/s, 5 ms; back at 2 MB/s.
INFRA = infra(
    [("dev", 2.0, 3.0, 10**9), ("edge", 5.0, 1.0, 10**9)],
    [("dev", "edge", 1e6, 0.005), ("edge", "dev", 2e6, 0.005)],
)
CHAIN = graph(
    {"a": 1000, "b": 400},
    [
        ("x", None, ["a"], 4_000_000, False),  # too big to send: a stays on the device
        ("h", "a", ["b"], 800_000, False),
        ("y", "b", [], 400, True),
    ],
)
CODEC = CodecTimes(
    encode={
        "cast16": CodecCost(1e-4, 1e-9),
        "int8": CodecCost(2e-4, 2e-9),
        "lz4": CodecCost(3e-4, 3e-9),
        "zstd": CodecCost(4e-4, 8e-9),
    },
    decode={
        "cast16": CodecCost(1e-4, 1e-9),
        "int8": CodecCost(2e-4, 1e-9),
        "lz4": CodecCost(3e-4, 1e-9),
        "zstd": CodecCost(4e-4, 2e-9),
    },
)
TABLE = CompressionTable(
    "0" * 64,
    {
        ("h", "fp32", "lz4"): 0.8,
        ("h", "fp32", "zstd"): 0.9,
        ("h", "fp16", "lz4"): 0.7,
        ("h", "int8", "lz4"): 0.5,
        ("h", "int8", "zstd"): 0.4,
    },
)


def _problem(**changes) -> PlanningProblem:
    times = {"a": (0.1, 0.05), "b": (0.2, 0.1)}
    profiles = {  # the edge is 10× faster, codecs included
        node: replace(
            profile(node, {b: (f * s, q * s) for b, (f, q) in times.items()}),
            codec=CODEC.scaled(s),
        )
        for node, s in (("dev", 1.0), ("edge", 0.1))
    }
    links = (link_variable("h", "fp16"), link_variable("h", "int8"))
    terms = {("a",): 0.2, ("b",): 0.2, (links[0],): 0.001, (links[1],): 0.03, ("b", links[1]): 0.01}
    poly = replace(noise(["a", "b"], 0.0, terms), links=links)
    fields = {"noise": poly, "compression": TABLE, **changes}
    return PlanningProblem(CHAIN, INFRA, profiles, **fields)


SPLIT = {"a": "dev", "b": "edge"}


def test_int8_link_with_lz4_by_hand() -> None:
    problem = _problem()
    ev = evaluate(problem, SPLIT, (), links={"h": LinkMode("int8", "lz4")})
    int8_bytes = 800_000 // 4 + QUANT_PARAMS_BYTES
    sent = int8_bytes * 0.5
    encode = (2e-4 + 2e-9 * 800_000) + (3e-4 + 3e-9 * int8_bytes)
    decode = 0.1 * ((3e-4 + 1e-9 * sent) + (2e-4 + 1e-9 * int8_bytes))
    send_h = 0.005 + sent / 1e6
    send_y = 0.005 + 400 / 2e6
    assert ev.transfer_bytes[("dev", "edge")] == pytest.approx(sent)
    assert ev.codec_s == pytest.approx({"dev": encode, "edge": decode})
    compute = 0.1 + 0.02
    assert ev.latency_s == pytest.approx(compute + encode + decode + send_h + send_y)
    assert ev.device_energy_j == pytest.approx(2.0 * (0.1 + encode) + 3.0 * send_h)
    assert ev.noise == pytest.approx(0.03)
    assert ev.links == {"h": LinkMode("int8", "lz4")}
    critical = evaluate(problem, SPLIT, (), "critical-path", links={"h": LinkMode("int8", "lz4")})
    assert critical.latency_s == pytest.approx(compute + encode + decode + send_h + send_y)


def test_fp16_and_codec_only_by_hand() -> None:
    problem = _problem()
    fp16 = evaluate(problem, SPLIT, (), links={"h": LinkMode("fp16", "none")})
    assert fp16.transfer_bytes[("dev", "edge")] == 400_000
    assert fp16.codec_s["dev"] == pytest.approx(1e-4 + 1e-9 * 800_000)
    assert fp16.codec_s["edge"] == pytest.approx(0.1 * (1e-4 + 1e-9 * 400_000))
    assert fp16.noise == pytest.approx(0.001)
    lz4 = evaluate(problem, SPLIT, (), links={"h": LinkMode("fp32", "lz4")})
    assert lz4.transfer_bytes[("dev", "edge")] == pytest.approx(640_000)
    assert lz4.codec_s["dev"] == pytest.approx(3e-4 + 3e-9 * 800_000)
    assert lz4.noise == 0.0


def test_a_quantized_producer_sends_int8_and_may_compress_it() -> None:
    problem = _problem()
    ev = evaluate(problem, SPLIT, ("a",), links={"h": LinkMode("fp32", "zstd")})
    int8_bytes = 800_000 // 4 + QUANT_PARAMS_BYTES
    assert ev.transfer_bytes[("dev", "edge")] == pytest.approx(int8_bytes * 0.4)
    assert ev.codec_s["dev"] == pytest.approx(4e-4 + 8e-9 * int8_bytes)  # no cast: a is int8
    with pytest.raises(AssignmentError, match="quantized block"):
        evaluate(problem, SPLIT, ("a",), links={"h": LinkMode("int8", "none")})


def test_modes_without_inputs_are_refused() -> None:
    problem = _problem()
    assert LinkMode("fp16", "zstd") not in problem.link_modes("h")  # no ratio measured
    with pytest.raises(AssignmentError, match="does not offer"):
        evaluate(problem, SPLIT, (), links={"h": LinkMode("fp16", "zstd")})
    with pytest.raises(AssignmentError):
        evaluate(problem, SPLIT, (), links={"y": LinkMode("int8", "none")})  # a model output


def test_the_planner_sends_int8_over_the_slow_link_within_the_noise_bound() -> None:
    loose = plan(_problem(w_latency=1.0, w_energy=0.0, bounds=Bounds(noise_max=0.05)))
    assert loose.assignment == SPLIT
    assert loose.link_precision == {"h": "int8"} and loose.link_codec == {"h": "zstd"}
    tight = plan(_problem(w_latency=1.0, w_energy=0.0, bounds=Bounds(noise_max=0.01)))
    assert tight.predicted.noise <= 0.01 and "int8" not in tight.link_precision.values()
    off = plan(
        _problem(
            w_latency=1.0, w_energy=0.0, bounds=Bounds(noise_max=0.05), link_precisions=frozenset()
        )
    )
    assert off.link_precision == {} and off.link_codec == {}
    assert loose.predicted.latency_s < off.predicted.latency_s
    assert loose.baselines and all(
        b.noise == 0.0 for name, b in loose.baselines.items() if "int8" not in name
    )


def test_plan_file_round_trip_and_old_files(tmp_path) -> None:
    result = plan(_problem(w_latency=1.0, w_energy=0.0, bounds=Bounds(noise_max=0.05)))
    result.save(tmp_path / "plan.json")
    loaded = Plan.load(tmp_path / "plan.json")
    assert loaded.link_precision == {"h": "int8"} and loaded.link_codec == {"h": "zstd"}
    assert loaded.link_modes == {"h": LinkMode("int8", "zstd")}
    import json

    document = json.loads((tmp_path / "plan.json").read_text())
    del document["link_precision"], document["link_codec"]
    (tmp_path / "old.json").write_text(json.dumps(document))
    old = Plan.load(tmp_path / "old.json")
    assert old.link_precision == {} and old.link_modes == {}


def test_cli_plan_shows_link_choices_and_can_switch_them_off(tmp_path) -> None:
    from typer.testing import CliRunner

    from qsplit.cli import app

    problem = _problem()
    problem.graph.save(tmp_path / "graph.json")
    for node, p in problem.profiles.items():
        p.save(str(tmp_path / f"{node}.json"))
    assert problem.noise is not None
    problem.noise.save(str(tmp_path / "noise.json"))
    TABLE.save(tmp_path / "compression.json")
    (tmp_path / "infra.yaml").write_text(
        "schema_version: 1\ndevice: dev\nnodes:\n"
        "  - {name: dev, role: device, compute_power_w: 2, transmit_power_w: 3, "
        "memory_bytes: 1GB}\n"
        "  - {name: edge, role: edge, compute_power_w: 5, transmit_power_w: 1, memory_bytes: 1GB}\n"
        "links:\n  - {from: dev, to: edge, bandwidth: 1MB/s, latency: 5ms}\n"
        "  - {from: edge, to: dev, bandwidth: 2MB/s, latency: 5ms}\n"
    )
    args = [
        "plan",
        *("--graph", str(tmp_path / "graph.json"), "--infra", str(tmp_path / "infra.yaml")),
        *("--profiles", str(tmp_path / "dev.json"), "--profiles", str(tmp_path / "edge.json")),
        *("--noise", str(tmp_path / "noise.json"), "--noise-max", "0.05"),
        *("--compression", str(tmp_path / "compression.json"), "--w-energy", "0"),
        *("--w-latency", "1", "--out", str(tmp_path / "plan.json")),
    ]
    shown = CliRunner().invoke(app, args, terminal_width=140)
    assert shown.exit_code == 0, shown.output
    assert "Links — 1 tensor(s)" in shown.output and "zstd" in shown.output
    assert Plan.load(tmp_path / "plan.json").link_precision == {"h": "int8"}
    off = CliRunner().invoke(app, [*args, "--no-link-precision"], terminal_width=140)
    assert off.exit_code == 0, off.output
    assert "Links" not in off.output
    assert Plan.load(tmp_path / "plan.json").link_modes == {}


def test_pareto_points_record_their_link_modes(tmp_path) -> None:
    from qsplit.plan import ParetoFront, pareto_front

    front = pareto_front(_problem(bounds=Bounds(noise_max=0.05)), points=3)
    linked = [p for p in front.points if p.link_precision or p.link_codec]
    assert linked
    front.save(tmp_path / "pareto.json")
    again = ParetoFront.load(tmp_path / "pareto.json")
    assert [p.link_codec for p in again.points] == [p.link_codec for p in front.points]
    assert [p.link_precision for p in again.points] == [p.link_precision for p in front.points]
