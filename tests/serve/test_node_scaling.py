"""What a shared node's batches run on (no Ray for most): the settings and their validation,
Serve's options for the worker deployment, and the in-process pool of one thread per slot."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from qsplit.errors import InputError
from qsplit.fleet import AutoscalePolicy
from qsplit.serve import NodeScaling
from qsplit.serve._batches import PaddedBatches

DEFAULT_POOL = 32
"""The most threads asyncio's default executor ever has: min(32, cores + 4)."""


def test_bad_settings_are_refused_naming_every_field() -> None:
    with pytest.raises(InputError) as caught:
        NodeScaling("autoscale", min_replicas=0, upscale_delay_s=-1, look_back_period_s=0)
    assert caught.value.field == "min_replicas, upscale_delay_s, look_back_period_s"
    with pytest.raises(InputError, match="mode") as caught:
        NodeScaling("workers")  # type: ignore[arg-type]
    assert "in-process, fixed, autoscale" in str(caught.value.fix)
    with pytest.raises(InputError, match="downscale_delay_s"):
        NodeScaling("autoscale", downscale_delay_s=-0.5)


def test_min_replicas_above_a_nodes_replicas_is_refused() -> None:
    scaling = NodeScaling("autoscale", min_replicas=3)
    scaling.check("cloud", 3)
    with pytest.raises(InputError) as caught:
        scaling.check("edge", 2)
    assert caught.value.field == "min_replicas" and "'edge'" in str(caught.value)
    NodeScaling("fixed", min_replicas=3).check("edge", 2)  # fixed: the node's replicas


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, on import
def test_worker_options_are_serves() -> None:
    assert not NodeScaling().workers
    assert NodeScaling("fixed").worker_options(3) == {"num_replicas": 3}
    options = NodeScaling("autoscale", min_replicas=2, upscale_delay_s=1).worker_options(4)
    config = options["autoscaling_config"]
    assert (config["min_replicas"], config["initial_replicas"], config["max_replicas"]) == (2, 2, 4)
    assert config["target_ongoing_requests"] == 1 and config["upscale_delay_s"] == 1
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'qsplit[ray]')")
    from ray.serve.config import AutoscalingConfig

    serve_config = AutoscalingConfig(**config)  # Serve accepts every field as given
    assert serve_config.downscale_delay_s == NodeScaling().downscale_delay_s


class Blocking:
    """A component stand-in whose batch returns only once ``count`` batches run at once."""

    def __init__(self, count: int) -> None:
        self.barrier = threading.Barrier(count, timeout=10)

    def run_many(self, requests: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        self.barrier.wait()  # BrokenBarrierError when fewer run at once
        return [{"y": r["x"] + 1} for r in requests]


def test_a_node_with_more_slots_than_the_default_pool_runs_them_all_at_once() -> None:
    slots = DEFAULT_POOL + 8
    batches = PaddedBatches({"c": Blocking(slots)}, slots, "front")

    async def all_at_once() -> list:
        start = time.time()
        return await asyncio.gather(
            *(
                batches.run("c", [{"x": np.full(1, i)}], start, 0.01)
                for i in range(slots)
            )
        )

    try:
        ran = asyncio.run(all_at_once())
    finally:
        batches.close()
    assert [r["outputs"][0]["y"][0] for r in ran] == [i + 1 for i in range(slots)]
    assert {r["replica"] for r in ran} == {"front"}


class Slow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run_many(self, requests: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        time.sleep(self.seconds)
        return [dict(r) for r in requests]


def test_a_batch_is_padded_from_its_start_or_counted_as_an_overrun() -> None:
    batches = PaddedBatches({"fast": Slow(0.0), "slow": Slow(0.2)}, 1, "w")
    try:
        start = time.time() - 0.05  # its slot started before it reached this server
        padded = asyncio.run(batches.run("fast", [{"x": np.zeros(1)}], start, 0.15))
        overran = asyncio.run(batches.run("slow", [{"x": np.zeros(1)}], time.time(), 0.05))
    finally:
        batches.close()
    assert padded["start"] == start and padded["received"] >= start + 0.05
    assert padded["end"] >= start + 0.15
    assert not padded["overrun"]
    assert overran["overrun"] and overran["end"] - overran["start"] >= 0.2


def test_serve_and_the_simulation_get_the_same_policy() -> None:
    scaling = NodeScaling("autoscale", min_replicas=2, downscale_delay_s=60, metrics_interval_s=1)
    policy = scaling.policy
    assert (policy.min_replicas, policy.downscale_delay_s, policy.metrics_interval_s) == (2, 60, 1)
    assert scaling.worker_options(4)["autoscaling_config"] == policy.serve_config(4)
    assert NodeScaling().policy == AutoscalePolicy()  # one set of defaults
