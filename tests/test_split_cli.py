"""``qsplit split``: component files on disk that reproduce the model; bad assignments refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import random_feeds, session

INFRA = """
schema_version: 1
device: device
nodes:
  - {name: device, role: device, compute_power_w: 3, transmit_power_w: 3, memory_bytes: 1GiB}
  - {name: edge, role: edge, compute_power_w: 6, transmit_power_w: 2, memory_bytes: 4GiB}
links:
  - {from: device, to: edge, bandwidth: 5MB/s, latency: 5ms, symmetric: true}
"""


def _qsplit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qsplit", *args], capture_output=True, text=True, check=False
    )


def test_split_from_plan_file_at_node_granularity(model_dir: Path, tmp_path: Path) -> None:
    model_path = model_dir / "branchy.onnx"
    whole = onnx.load(model_path)
    nodes = [n.name for n in whole.graph.node]
    assignment = {n: ("edge" if "body" in n else "device") for n in nodes}
    (tmp_path / "plan.json").write_text(json.dumps({"assignment": assignment}))
    (tmp_path / "infra.yaml").write_text(INFRA)
    out = tmp_path / "parts"
    result = _qsplit(
        "split",
        str(model_path),
        "--assignment",
        str(tmp_path / "plan.json"),
        "--infra",
        str(tmp_path / "infra.yaml"),
        "--granularity",
        "node",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    index = json.loads((out / "components.json").read_text())
    placed = [c["node"] for c in index["components"]]
    assert placed.count("edge") == 1 and placed[0] == "device" and placed[-1] == "device"

    feeds = random_feeds(whole)
    expected = dict(zip(["out", "skip"], session(whole).run(["out", "skip"], feeds), strict=True))
    values = dict(feeds)
    for entry in index["components"]:
        part = onnx.load(out / entry["file"])
        outs = session(part).run(entry["outputs"], {i: values[i] for i in entry["inputs"]})
        values.update(zip(entry["outputs"], outs, strict=True))
    for name, value in expected.items():
        np.testing.assert_allclose(values[name], value, atol=1e-5, rtol=0)


def test_unknown_node_is_named_with_the_fix(model_dir: Path, tmp_path: Path) -> None:
    nodes = [n.name for n in onnx.load(model_dir / "branchy.onnx").graph.node]
    (tmp_path / "a.json").write_text(json.dumps(dict.fromkeys(nodes, "fog")))
    (tmp_path / "infra.yaml").write_text(INFRA)
    result = _qsplit(
        "split",
        str(model_dir / "branchy.onnx"),
        "--assignment",
        str(tmp_path / "a.json"),
        "--infra",
        str(tmp_path / "infra.yaml"),
        "--granularity",
        "node",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 2
    assert "unknown node(s) 'fog'" in result.stderr
    assert "use one of the nodes device, edge" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not.a.block: device\n", "unknown block(s): 'not.a.block'"),
        ("- just\n- a list\n", "a.yaml: expected a mapping of block name to node name"),
        ("a: [unclosed\n", "a.yaml: not valid YAML"),
    ],
)
def test_bad_assignment_file(model_dir: Path, tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "a.yaml").write_text(content)
    result = _qsplit(
        "split",
        str(model_dir / "branchy.onnx"),
        "--assignment",
        str(tmp_path / "a.yaml"),
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
