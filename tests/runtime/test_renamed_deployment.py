"""One class's deployment given to each of its devices: the same components under the device's
own name and agents, with an identity of its own (a fleet's devices behind gateway agents)."""

from __future__ import annotations

from pathlib import Path

import pytest

import qsplit
import synthetic
from qsplit.errors import InputError
from qsplit.infra import load_infra
from qsplit.model import analyze
from qsplit.runtime import build_deployment, renamed_deployment

BEHIND_EDGE = Path(qsplit.__file__).parent / "examples" / "device-behind-edge.yaml"


def test_a_renamed_deployment_is_the_same_split_for_another_node(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    split = {b: "device" if i < len(blocks) // 2 else "cloud" for i, b in enumerate(blocks)}
    built = build_deployment(path, split, load_infra(BEHIND_EDGE))
    agents = {"cam-3": "127.0.0.1:9003", "edge": "127.0.0.1:9100", "cloud": "127.0.0.1:9200"}
    one = renamed_deployment(built, {"device": "cam-3"}, agents)
    assert [c.node for c in one.components] == ["cam-3", "cloud"]
    assert [c.onnx for c in one.components] == [c.onnx for c in built.components]

    def renamed(nodes: tuple[str, ...]) -> tuple[str, ...]:
        return tuple("cam-3" if n == "device" else n for n in nodes)

    for new, old in zip(one.components, built.components, strict=True):
        assert new.routes == {t: renamed(r) for t, r in old.routes.items()}
    assert one.model_inputs == {t: renamed(r) for t, r in built.model_inputs.items()}
    assert "cam-3" in set().union(*one.model_inputs.values())
    assert one.relays == {("cam-3", "cloud"): ("edge",), ("cloud", "cam-3"): ("edge",)}
    assert one.addresses == agents  # the relay is reached too
    # Another device of the class, or the same one at other agents: another deployment.
    other = renamed_deployment(built, {"device": "cam-4"}, agents | {"cam-4": "127.0.0.1:9004"})
    moved = renamed_deployment(built, {"device": "cam-3"}, agents | {"edge": "127.0.0.1:9101"})
    assert len({built.id, one.id, other.id, moved.id}) == 4
    assert renamed_deployment(built, {"device": "cam-3"}, agents).id == one.id
    with pytest.raises(InputError, match="no agent address for node\\(s\\) edge") as missing:
        renamed_deployment(built, {"device": "cam-3"}, {"cam-3": "a:1", "cloud": "b:2"})
    assert missing.value.field == "addresses"
