"""Profiles and noise models follow a LayerGraph through coarsening (no prototype data needed)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from plan_helpers import graph, noise, profile

from qsplit.errors import InputError
from qsplit.model import coarsen
from qsplit.prototype import block_mapping, coarsen_noise, coarsen_profile

FINE = replace(
    graph(
        {"/m.0/a": 10, "/m.0/b": 20, "/m.1/c": 30, "/m.1/d": 40},
        [
            ("in", None, ["/m.0/a"], 400, False),
            ("ta", "/m.0/a", ["/m.0/b", "/m.1/c"], 400, False),
            ("tb", "/m.0/b", ["/m.1/c"], 400, False),
            ("tc", "/m.1/c", ["/m.1/d"], 400, False),
            ("td", "/m.1/d", [], 400, True),
        ],
    ),
    granularity="node",
)
COARSE = coarsen(FINE)
MAPPING = block_mapping(FINE, COARSE)


def test_blocks_map_to_their_module() -> None:
    assert MAPPING == {"/m.0/a": "m.0", "/m.0/b": "m.0", "/m.1/c": "m.1", "/m.1/d": "m.1"}


def test_times_add_up_and_int8_falls_back_to_fp32() -> None:
    fine = profile(
        "dev",
        {
            "/m.0/a": (1.0, 0.25),
            "/m.0/b": (2.0, None),
            "/m.1/c": (3.0, None),
            "/m.1/d": (4.0, None),
        },
    )
    coarse = coarsen_profile(fine, MAPPING, COARSE)
    assert coarse.granularity == "block"
    assert coarse.blocks["m.0"].fp32_s == 3.0
    assert coarse.blocks["m.0"].int8_s == 2.25  # a at int8, b has no int8 timing: fp32
    assert coarse.blocks["m.1"].int8_s is None  # nothing in m.1 can be quantized


def test_noise_of_a_coarse_set_is_the_noise_of_its_members() -> None:
    fine = noise(
        ["/m.0/a", "/m.0/b", "/m.1/c"],
        0.01,
        {
            ("/m.0/a",): 0.02,
            ("/m.0/b",): 0.03,
            ("/m.1/c",): 0.05,
            ("/m.0/a", "/m.0/b"): -0.01,
            ("/m.0/a", "/m.1/c"): 0.004,
            ("/m.0/a", "/m.0/b", "/m.1/c"): 0.002,
        },
    )
    coarse = coarsen_noise(fine, MAPPING, COARSE)
    assert coarse.quantizable == ("m.0", "m.1")
    members = {"m.0": ["/m.0/a", "/m.0/b"], "m.1": ["/m.1/c"]}
    for size in range(3):
        for chosen in itertools.combinations(coarse.quantizable, size):
            expanded = [b for c in chosen for b in members[c]]
            assert coarse.predict(chosen) == pytest.approx(fine.predict(expanded))


def test_a_graph_that_was_not_the_source_is_refused() -> None:
    other = replace(COARSE, blocks=COARSE.blocks[:1])
    with pytest.raises(InputError, match="not inside exactly one coarse block"):
        block_mapping(FINE, other)
