"""Models only from the deployed bytes (issue 13, item 2): a component whose weights name a file
is refused before ORT could read that file, whatever the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from agents import running_agents
from qsplit.runtime._wire import Message, encode
from raw import deploy_frames, exchange, health

SECRET = np.array([1.5, -2.25], np.float32)


def reading(location: str) -> bytes:
    """``out = x + w``, where ``w`` is 8 bytes of external data at ``location``."""
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2])
    w.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": "8"}.items():
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])
    node = helper.make_node("Add", ["x", "w"], ["out"], "/add/Add")
    graph = helper.make_graph([node], "reader", [x], [out], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A working directory with a secret file at ``.ssh/id_test``."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_test").write_bytes(SECRET.tobytes())
    return tmp_path


@pytest.mark.parametrize("form", ["relative", "absolute", "dotdot"])
def test_a_component_naming_a_file_is_refused_and_nothing_is_read(home: Path, form) -> None:
    location = {
        "relative": ".ssh/id_test",
        "absolute": str(home / ".ssh" / "id_test"),
        "dotdot": f"../{home.name}/.ssh/id_test",
    }[form]
    with running_agents("a", cwd=home) as agents:
        address = agents["a"].address
        # Without graph optimisations ORT would read the file and return it as ``out``.
        frames = deploy_frames(reading(location), ["x"], ["out"], graph_optimization="disabled")
        answer = exchange(address, frames)
        assert answer is not None and not answer["ok"]
        assert "refers to the file" in answer["error"] and location in answer["error"]
        assert health(address)["deployments"] == {}
        profile = {"cid": 1, "node": "a", "sha256": "x", "granularity": "block"}
        profile_body = Message("profile", profile, blobs={"onnx": reading(location)})
        answer = exchange(address, encode(profile_body))
        assert answer is not None and not answer["ok"] and "refers to the file" in answer["error"]


def test_the_check_sees_tensors_in_subgraphs_and_attributes() -> None:
    from qsplit.errors import InputError
    from qsplit.runtime._selfcontained import check_self_contained

    inner = onnx.ModelProto.FromString(reading(".ssh/id_test")).graph
    constant = helper.make_node("Constant", [], ["c"], value=inner.initializer[0])
    branch = helper.make_graph(
        [constant], "then", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])]
    )
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])
    node = helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=branch)
    model = helper.make_model(helper.make_graph([node], "g", [cond], [out]))
    with pytest.raises(InputError, match="subgraph"):
        check_self_contained(model.SerializeToString(), "c0")
    with pytest.raises(InputError, match="not an ONNX model"):
        check_self_contained(b"\xff\xff garbage", "c0")
