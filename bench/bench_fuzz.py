"""Long fuzz run of the runtime (issue 13, item 7): the CI strategies for many more examples.

1. The decoder, in process: every generated frame list must decode or raise ProtocolError.
2. A real agent: batches of up to 8 generated messages of every kind (fuzzed bodies and frame
   descriptors, some raw), sent from one connection; after each batch the agent must answer
   ``health`` within 10 s. Reports frames sent, batches, agents left deaf (goal 0), the
   agent's rejection counters and its RSS before and after.

Usage: python bench/bench_fuzz.py [--decoder 20000] [--batches 2000] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import zmq
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))

from _output import emit_json
from agents import running_agents
from qsplit.runtime import ProtocolError
from qsplit.runtime._wire import Message, decode, encode
from raw import exchange, health
from wire_strategies import batches, frame_lists

SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def fuzz_decoder(examples: int) -> dict:
    outcome = {"examples": 0, "decoded": 0, "rejected": 0, "other_exceptions": 0}

    @settings(max_examples=examples, **SETTINGS)
    @given(frame_lists())
    def one(frames) -> None:
        outcome["examples"] += 1
        try:
            decode(frames)
            outcome["decoded"] += 1
        except ProtocolError:
            outcome["rejected"] += 1
        except Exception:
            outcome["other_exceptions"] += 1

    one()
    return outcome


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fuzz_agent(count: int) -> dict:
    outcome = {"batches": 0, "messages": 0, "frames": 0, "deaf": 0, "died": 0}
    with running_agents("fuzzed") as agents:
        agent = agents["fuzzed"]
        outcome["rss_start_mib"] = rss_mib(agent.process.pid)
        with zmq.Context() as context, context.socket(zmq.DEALER) as dealer:
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.connect(f"tcp://{agent.address}")

            @settings(max_examples=count, **SETTINGS)
            @given(batches())
            def one(batch) -> None:
                for frames in batch:
                    dealer.send_multipart(frames)
                    outcome["frames"] += len(frames)
                outcome["messages"] += len(batch)
                outcome["batches"] += 1
                while dealer.poll(0):
                    dealer.recv_multipart()
                if health(agent.address) is None:
                    outcome["deaf"] += 1
                if agent.process.poll() is not None:
                    outcome["died"] += 1

            start = time.perf_counter()
            one()
            outcome["wall_s"] = time.perf_counter() - start
        stats = exchange(agent.address, encode(Message("stats", {"cid": 1})))
        outcome["agent_rejected"] = stats["rejected"]
        outcome["agent_failed"] = stats["failed"]
        outcome["agent_task_deaths"] = stats["counts"].get("task_deaths", 0)
        outcome["rss_end_mib"] = rss_mib(agent.process.pid)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", type=int, default=20000)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {"decoder": fuzz_decoder(args.decoder), "agent": fuzz_agent(args.batches)}
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
