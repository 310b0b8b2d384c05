"""Profiling on request: an agent times every block under its own padding factor and threads."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

import synthetic
from agents import running_agents
from qsplit.model import analyze
from qsplit.runtime import RemoteError, profile_on_agent
from qsplit.runtime._profile import _exchange

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # ORT's quantization tooling


def by_hash_only(address: str, path: Path) -> dict:
    """Ask for a profile naming the model by hash only (empty bytes if the agent wants them)."""
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    body = {"node": "edge", "sha256": sha256, "warmup": 0, "repetitions": 1, "int8": False}
    return asyncio.run(_exchange(address, "edge", None, body, b"", 60.0))


def test_agent_profiles_a_model_under_its_own_settings(tmp_path: Path) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    _, graph = analyze(str(path))
    with running_agents("edge", args=("--padding-factor", "2.5", "--threads", "1")) as agents:
        address = agents["edge"].address
        with pytest.raises(RemoteError, match="sha256"):
            by_hash_only(address, path)  # not there yet: the empty bytes are refused
        profile = profile_on_agent(address, path, "edge", warmup=1, repetitions=3)
        assert profile.node == "edge"
        assert profile.model_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert set(profile.blocks) == set(graph.block_names)
        assert profile.settings["padding_factor"] == 2.5 and profile.settings["threads"] == 1
        assert all(t.fp32_s > 0 for t in profile.blocks.values())
        assert any(t.int8_s is not None for t in profile.blocks.values())
        assert by_hash_only(address, path)["profile"]["node"] == "edge"  # kept by hash
        with pytest.raises(RemoteError, match="not 'cloud'") as caught:
            profile_on_agent(address, path, "cloud", warmup=0, repetitions=1)
        assert caught.value.peer == "cloud"
