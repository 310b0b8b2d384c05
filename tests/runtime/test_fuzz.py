"""Fuzzing (issue 13, item 7): Hypothesis generates frames for the decoder and messages of every
kind for a real agent; the decoder may only return a message or raise ProtocolError, and after
each batch the agent must still answer ``health``. The CI run is short; ``bench/bench_fuzz.py``
runs the same strategies for many more examples."""

from __future__ import annotations

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import running_agents
from qsplit.runtime import ProtocolError
from qsplit.runtime._wire import MAGIC, VERSION, Message, decode
from raw import health
from wire_strategies import CONTROL, KINDS, batches, frame_lists

CI = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@CI
@given(frame_lists())
def test_the_decoder_returns_a_message_or_raises_protocol_error(frames) -> None:
    try:
        message = decode(frames)
    except ProtocolError as exc:
        assert exc.reason in ("malformed", "version", "unauthenticated", "oversized")
    else:
        assert isinstance(message, Message)


@CI
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_any_bytes_after_the_magic_are_decoded_or_refused(header, payload) -> None:
    with pytest.raises(ProtocolError):
        decode([MAGIC + bytes([VERSION]) + header, payload, b"x"], token="t")


@pytest.fixture(scope="module")
def agent():
    with running_agents("fuzzed") as agents:
        yield agents["fuzzed"]


@pytest.fixture(scope="module")
def dealer(agent):
    with zmq.Context() as context, context.socket(zmq.DEALER) as socket:
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.ROUTING_ID, b"fuzzer")
        socket.connect(f"tcp://{agent.address}")
        yield socket


@pytest.mark.parametrize("kind", KINDS + CONTROL)
def test_no_batch_of_messages_deafens_an_agent(agent, dealer, kind) -> None:
    """Every message kind, agents' and the transport's own, with fuzzed fields."""

    @settings(CI, max_examples=4)
    @given(batches(kind))
    def batch_then_health(batch) -> None:
        for frames in batch:
            dealer.send_multipart(frames)
        while dealer.poll(0):  # answers to the fuzzer are not its concern
            dealer.recv_multipart()
        answer = health(agent.address)
        assert answer is not None and answer["ok"], f"deaf after {len(batch)} {kind} messages"
        assert agent.process.poll() is None

    batch_then_health()
