"""Profiling on request: an agent times every block under its own padding factor and threads,
by the same path as ``qsplit profile``."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import synthetic
from agents import running_agents
from qsplit.assets import bundled_model_path
from qsplit.cli import app
from qsplit.model import analyze
from qsplit.profile import ComputeProfile
from qsplit.runtime import RemoteError, profile_on_agent
from qsplit.runtime._profile import _exchange

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # ORT's quantization tooling


def by_hash_only(address: str, path: Path) -> dict:
    """Ask for a profile naming the model by hash only (empty bytes if the agent wants them)."""
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    body = {"node": "edge", "sha256": sha256, "warmup": 0, "repetitions": 1, "int8": False}
    return asyncio.run(_exchange(address, "edge", None, None, body, b"", 60.0))


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


def _cli_profile(model: Path, node: str, out: Path, *options: str) -> ComputeProfile:
    result = CliRunner().invoke(
        app, ["profile", str(model), "--node", node, "--out", str(out), *options]
    )
    assert result.exit_code == 0, result.output
    return ComputeProfile.load(str(out))


def test_qsplit_profile_and_an_agent_give_one_emulated_node_the_same_profile(
    tmp_path: Path,
) -> None:
    """One profiling path (issue 14): ``qsplit profile --infra`` and a testbed agent asked for
    the same node's profile of the bundled YOLO11n return the same numbers, the model's
    shipped profile scaled to the node's reference time, whatever either one's padding."""
    model = bundled_model_path("yolo11n")
    args = ("--emulated", "--statistic", "min", "--padding-factor", "2.5")
    with running_agents("edge", args=args) as agents:
        by_agent = profile_on_agent(agents["edge"].address, model, "edge", reference_time_s=0.425)
    infra = Path(__file__).resolve().parents[2] / "src" / "qsplit" / "examples" / "device-edge.yaml"
    by_cli = _cli_profile(model, "edge", tmp_path / "edge.json", "--infra", str(infra))
    assert by_cli == by_agent
    assert sum(t.fp32_s for t in by_cli.blocks.values()) == pytest.approx(0.425)


def test_qsplit_profile_and_an_agent_time_a_model_the_same_way(tmp_path: Path) -> None:
    """For a model without a shipped profile both paths time it here, with the same settings
    (session, warm-up, repetitions, statistic, int8 quantizer and calibration inputs), so their
    numbers agree up to the noise of two measurements: compared with each other, not with a
    time, on the same machine. The model's blocks take tenths of a millisecond, so one burst of
    other work on a shared machine can double one path's total; three tries tell such a burst
    (one good try) from two paths that time differently (no good try)."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    attempts = []
    for attempt in range(3):
        with running_agents("edge") as agents:
            by_agent = profile_on_agent(agents["edge"].address, path, "edge", repetitions=20)
        by_cli = _cli_profile(path, "edge", tmp_path / f"edge-{attempt}.json")
        assert by_cli.settings == by_agent.settings
        assert (
            by_cli.model_sha256 == by_agent.model_sha256
            and by_cli.blocks.keys() == by_agent.blocks.keys()
        )
        ratios = {
            precision: sum(getattr(t, precision) or 0.0 for t in by_cli.blocks.values())
            / sum(getattr(t, precision) or 0.0 for t in by_agent.blocks.values())
            for precision in ("fp32_s", "int8_s")
        }
        attempts.append(ratios)
        if all(0.5 <= r <= 2.0 for r in ratios.values()):
            return
    pytest.fail(f"CLI / agent total per precision, per attempt: {attempts}")
