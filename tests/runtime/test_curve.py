"""CURVE between real agent processes: encrypted sessions that reproduce the whole model, and
refusals (no key, an unknown key, off loopback in clear) that are clear errors, not hangs."""

from __future__ import annotations

import dataclasses
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
import zmq

import synthetic
from agents import AgentProcess, infra_for, running_agents
from conftest import random_feeds, session
from qsplit.errors import InputError
from qsplit.infra import Infra
from qsplit.model import analyze
from qsplit.runtime import (
    AgentSettings,
    build_deployment,
    connect,
    curve_keys,
    generate_keys,
    health_of,
    profile_on_agent,
    read_secret_key,
)
from qsplit.runtime.errors import TransportError

NODES = ("device", "edge", "cloud")
CHAIN = (("device", "edge"), ("edge", "cloud"))
"""No direct device ↔ cloud link: the edge relays, over CURVE too."""


def keyed(infra: Infra, keys: Path, *, device_key: str = "device") -> Infra:
    """``infra`` with every node's public key from ``keys/NODE.key`` (the device's from
    ``device_key``)."""
    nodes = []
    for node in infra.nodes:
        stem = device_key if node.name == infra.device else node.name
        public, _ = read_secret_key(keys / f"{stem}.key")
        nodes.append(dataclasses.replace(node, curve_public_key=public))
    return dataclasses.replace(infra, nodes=tuple(nodes))


def key_infra_file(keys: Path) -> Path:
    """The infrastructure file the agents read their allowed keys from (no addresses needed)."""
    nodes = []
    for name in NODES:
        public, _ = read_secret_key(keys / f"{name}.key")
        role = "device" if name == "device" else "edge"
        nodes.append(
            {
                "name": name,
                "role": role,
                "compute_power_w": 1,
                "transmit_power_w": 1,
                "memory_bytes": "1GB",
                "curve_public_key": public,
            }
        )
    link = {"bandwidth": "1Gbps", "latency": "1ms", "symmetric": True}
    links = [{"from": a, "to": b, **link} for a, b in CHAIN]
    doc = {"schema_version": 1, "device": "device", "nodes": nodes, "links": links}
    path = keys / "infra.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    for name in (*NODES, "stranger"):
        generate_keys(folder / name)
    key_infra_file(folder)
    return folder


@pytest.fixture(scope="module")
def agents(keys: Path) -> Iterator[dict[str, AgentProcess]]:
    """One agent per node, each started with its own key file."""

    def own_key(name: str) -> tuple[str, ...]:
        return ("--curve-key", str(keys / f"{name}.key"), "--infra", str(keys / "infra.yaml"))

    with running_agents(*NODES, own_args=own_key) as running:
        yield running


def test_locked_pyzmq_has_curve() -> None:
    assert zmq.has("curve")


def test_curve_session_through_a_relay_equals_the_whole_model(
    agents: dict[str, AgentProcess], keys: Path, tmp_path: Path
) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    blocks = analyze(str(path))[1].block_names
    split = {b: "device" if i < len(blocks) // 2 else "cloud" for i, b in enumerate(blocks)}
    infra = keyed(infra_for(agents, links=CHAIN), keys)
    deployment = build_deployment(path, split, infra)
    assert deployment.relays[("device", "cloud")] == ("edge",)
    model = onnx.load(path)
    with connect(
        deployment, infra, graph_optimization="disabled", curve_key=keys / "device.key"
    ) as s:
        for seed in (0, 1):
            feeds = random_feeds(model, seed)
            outputs, record = s.infer_timed(feeds)
            for name, want in zip(
                deployment.model_outputs, session(model).run(None, feeds), strict=True
            ):
                np.testing.assert_array_equal(outputs[name], want)
            assert {r.node for r in record.runs} == {"device", "cloud"}
        assert s.stats()["edge"]["counts"]["relayed"] > 0


def test_a_requester_without_a_key_is_refused_before_connecting(
    agents: dict[str, AgentProcess], keys: Path, tmp_path: Path
) -> None:
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    infra = keyed(infra_for(agents, links=CHAIN), keys)
    deployment = build_deployment(
        path, dict.fromkeys(analyze(str(path))[1].block_names, "edge"), infra
    )
    with pytest.raises(InputError, match=r"accept only CURVE connections.*--curve-key"):
        connect(deployment, infra)


def test_a_requester_in_clear_is_refused_with_the_reason(
    agents: dict[str, AgentProcess], tmp_path: Path
) -> None:
    """An infra file without keys: the session talks in clear and the agents refuse it."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    infra = infra_for(agents, links=CHAIN)
    deployment = build_deployment(
        path, dict.fromkeys(analyze(str(path))[1].block_names, "edge"), infra
    )
    with pytest.raises(TransportError, match="refused the connection: the security handshake"):
        connect(deployment, infra)


def test_an_unknown_key_is_refused_with_the_reason(
    agents: dict[str, AgentProcess], keys: Path, tmp_path: Path
) -> None:
    """A requester whose key the agents' infra file does not list is refused by their ZAP
    handler, and told so."""
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    infra = keyed(infra_for(agents, links=CHAIN), keys, device_key="stranger")
    deployment = build_deployment(
        path, dict.fromkeys(analyze(str(path))[1].block_names, "edge"), infra
    )
    with pytest.raises(TransportError, match="refused this side's CURVE key"):
        connect(deployment, infra, curve_key=keys / "stranger.key")


def test_off_loopback_an_agent_needs_curve_or_the_explicit_flag(keys: Path) -> None:
    with pytest.raises(InputError, match=r"without CURVE.*qsplit keys generate edge"):
        AgentSettings(name="edge", listen="0.0.0.0:7102", token="secret")
    AgentSettings(name="edge", listen="0.0.0.0:7102", token="secret", allow_plaintext=True)
    AgentSettings(name="edge", listen="127.0.0.1:7102")  # loopback may stay open


def qsplit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qsplit", *args], capture_output=True, text=True, timeout=120
    )


def test_the_agent_command_refuses_clear_text_off_loopback_and_empty_keys(keys: Path) -> None:
    clear = qsplit("agent", "--name", "edge", "--listen", "0.0.0.0:0", "--token", "t")
    assert clear.returncode == 2
    assert "without CURVE" in clear.stderr and "--allow-plaintext" in clear.stderr
    empty = keys / "empty.key"
    empty.write_text("")
    infra = str(keys / "infra.yaml")
    refused = qsplit(
        "agent",
        "--name",
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--curve-key",
        str(empty),
        "--infra",
        infra,
    )
    assert refused.returncode == 2
    assert "empty.key: curve_secret_key: no CURVE secret key" in refused.stderr
    other = qsplit(
        "agent",
        "--name",
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--curve-key",
        str(keys / "cloud.key"),
        "--infra",
        infra,
    )
    assert other.returncode == 2
    assert "nodes[1].curve_public_key: node 'edge' lists another public key" in other.stderr


def test_keys_generate_writes_a_valid_private_pair_and_keeps_it(tmp_path: Path) -> None:
    made = qsplit("keys", "generate", "edge", "--out", str(tmp_path))
    assert made.returncode == 0, made.stderr
    secret_file, public_file = tmp_path / "edge.key", tmp_path / "edge.pub"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    public, secret = read_secret_key(secret_file)
    assert zmq.curve_public(secret.encode()).decode() == public
    assert yaml.safe_load(public_file.read_text()) == {"curve_public_key": public}
    assert f'curve_public_key: "{public}"' in made.stdout
    again = qsplit("keys", "generate", "edge", "--out", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr
    assert read_secret_key(secret_file) == (public, secret)
    forced = qsplit("keys", "generate", "edge", "--out", str(tmp_path), "--force")
    assert forced.returncode == 0
    assert read_secret_key(secret_file)[0] != public


def test_health_and_profiling_reach_a_curve_agent_only_with_keys(
    agents: dict[str, AgentProcess], keys: Path, tmp_path: Path
) -> None:
    """The requests made outside a session (``testbed status``'s health, profiling on the
    agent) speak CURVE too: with the requester's keys they are answered; in clear the refused
    handshake is the error, not a silent timeout."""
    infra = keyed(infra_for(agents, links=CHAIN), keys)
    curve = curve_keys(infra, keys / "device.key", node="device")
    address = agents["edge"].address
    health = health_of(address, node="edge", curve=curve, timeout_s=10.0)
    assert health is not None and health["node"] == "edge"
    with pytest.raises(TransportError, match="refused the connection"):
        health_of(address, timeout_s=5.0)
    path = synthetic.save(synthetic.branchy_cnn(), tmp_path / "branchy.onnx")
    profile = profile_on_agent(
        address, path, "edge", curve=curve, int8=False, warmup=1, repetitions=2, timeout_s=120
    )
    assert set(profile.blocks) == set(analyze(str(path))[1].block_names)
    assert all(t.fp32_s > 0 for t in profile.blocks.values())
