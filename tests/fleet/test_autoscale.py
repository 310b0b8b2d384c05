"""Serve's autoscaling policy as the simulation steps it, the simulation with autoscaled nodes,
and the advice on ``min_replicas`` (no Ray, except for the check against Serve's own code)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from fleet_helpers import candidate, fleet
from typer.testing import CliRunner

from qsplit.cli import app
from qsplit.demo._config import EXAMPLES
from qsplit.errors import InputError
from qsplit.fleet import (
    AutoscalePolicy,
    Choice,
    Decision,
    FleetProblem,
    decide,
    price_autoscaling,
    simulate,
)
from qsplit.fleet._simulate import _Servers


def _steps(
    policy: AutoscalePolicy,
    ongoing: list[float],
    *,
    target: int,
    max_replicas: int = 3,
    every_s: float = 0.5,
) -> list[int]:
    """The target after each decision, ``every_s`` apart, the running replicas following the
    target at once."""
    state, targets = Decision(target), []
    for i, value in enumerate(ongoing):
        state = decide(
            policy,
            state,
            now_s=i * every_s,
            ongoing=value,
            running=state.target,
            max_replicas=max_replicas,
        )
        targets.append(state.target)
    return targets


def test_scale_up_only_once_the_upscale_delay_has_passed() -> None:
    policy = AutoscalePolicy(upscale_delay_s=2.0)
    assert _steps(policy, [2.6] * 6, target=1) == [1, 1, 1, 1, 3, 3]
    # a decision for no change restarts the clock: up at 0.5, 1.0, none at 1.5, up from 2.0
    assert _steps(policy, [0.9, 2.6, 2.6, 1.0, 2.6, 2.6, 2.6, 2.6, 2.6], target=1) == [
        *[1] * 8,
        3,
    ]


def test_scale_down_only_once_the_downscale_delay_has_passed() -> None:
    policy = AutoscalePolicy(downscale_delay_s=10.0)
    targets = _steps(policy, [0.4] * 22, target=3)
    assert targets[:20] == [3] * 20 and targets[20:] == [1, 1]  # 10 s after the first at 0 s
    # demand above the target in between restarts the downscale clock
    targets = _steps(policy, [0.4] * 10 + [3.5] + [0.4] * 21, target=3)
    assert targets[:31] == [3] * 31 and targets[31] == 1


def test_bounds_hold_the_target() -> None:
    assert _steps(AutoscalePolicy(upscale_delay_s=0), [9.0], target=1, max_replicas=4) == [4]
    policy = AutoscalePolicy(min_replicas=2, downscale_delay_s=0)
    assert _steps(policy, [0.0], target=4, max_replicas=4) == [2]


def test_smoothing_factors_close_part_of_the_gap() -> None:
    up = AutoscalePolicy(upscale_delay_s=0, upscaling_factor=0.5)
    assert _steps(up, [5.0], target=1, max_replicas=8) == [3]  # ceil(1 + 0.5 · 4)
    down = AutoscalePolicy(downscale_delay_s=0, downscaling_factor=0.1)
    # ceil(3 − 0.1 · 2) = 3 would leave it stuck: one step down
    assert _steps(down, [1.0], target=3) == [2]
    assert _steps(down, [2.5], target=3) == [3]  # ceil(2.5) is 3: no scale-down wanted


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, on import
def test_decisions_match_serves_own_policy_code() -> None:
    """Random ongoing sequences through Ray Serve 2.60's scaling factors, delay logic and
    bounds, and through :func:`decide`: the same targets at every step."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'qsplit[ray]')")
    from ray.serve.autoscaling_policy import _apply_delay_logic, _apply_scaling_factors
    from ray.serve.config import AutoscalingConfig

    rng = random.Random(5)
    for case in range(20):
        policy = AutoscalePolicy(
            min_replicas=rng.randint(1, 2),
            upscale_delay_s=rng.choice([0.0, 1.0, 2.0]),
            downscale_delay_s=rng.choice([0.0, 1.5, 4.0]),
            upscaling_factor=rng.choice([1.0, 0.5, 2.0]),
            downscaling_factor=rng.choice([1.0, 0.3]),
        )
        config = AutoscalingConfig(**policy.serve_config(5))
        ours, serve_state, serve_target = Decision(1), {}, 1  # type: ignore[var-annotated]
        for step in range(60):
            now, ongoing = step * 0.5, rng.uniform(0, 6)
            running = serve_target
            ours = decide(policy, ours, now_s=now, ongoing=ongoing, running=running, max_replicas=5)
            desired = _apply_scaling_factors(ongoing / 1.0, running, config)
            decided, serve_state = _apply_delay_logic(
                max(0, desired), serve_target, config, serve_state, _now=now
            )
            serve_target = min(max(decided, policy.min_replicas), 5)
            assert ours.target == serve_target, (case, step)


def test_bad_policy_values_are_refused_naming_every_field() -> None:
    with pytest.raises(InputError) as caught:
        AutoscalePolicy(
            min_replicas=0, downscale_delay_s=-1, replica_start_s=-2, upscaling_factor=0
        )
    assert caught.value.field == (
        "min_replicas, downscale_delay_s, replica_start_s, upscaling_factor"
    )
    with pytest.raises(InputError, match="look_back_period_s"):
        AutoscalePolicy(look_back_period_s=0)


def _cloud(
    devices: int, rate_hz: float, replicas: int = 3, batch_s: float = 0.7
) -> tuple[FleetProblem, Choice]:
    """One class on a cloud of ``replicas``: ρ·c = devices · rate · batch_s."""
    f = fleet([("cams", devices, rate_hz)], [("cloud", replicas)])
    work = [("cloud", "tail", 0.0, batch_s)]
    cands = {"cams": (candidate("split", 1.0, 1.0, 0.1, work),)}
    return FleetProblem(f, cands, utilisation_max=0.9), Choice({"cams": 0}, {"cloud": 1})


def test_min_equal_to_max_is_the_fixed_simulation() -> None:
    problem, choice = _cloud(20, 0.075)
    fixed = simulate(problem, choice, requests=4000, seed=2)
    pinned = simulate(problem, choice, requests=4000, seed=2, autoscale=AutoscalePolicy(3))
    assert pinned == fixed
    assert fixed.servers == {"cloud": (3.0, 3, 3)}


def test_a_long_downscale_delay_keeps_the_fixed_p95() -> None:
    problem, choice = _cloud(20, 0.075)  # ρ·c = 1.05
    fixed = simulate(problem, choice, requests=4000, seed=1)
    slow = AutoscalePolicy(downscale_delay_s=600)
    held = simulate(problem, choice, requests=4000, seed=1, autoscale=slow)
    assert held.latency_p95_s == pytest.approx(fixed.latency_p95_s, rel=0.05)
    assert held.servers["cloud"][0] > 2.9


def test_a_short_downscale_delay_at_one_busy_server_costs_the_p95() -> None:
    """The measured case (docs/BENCHMARKS.md): ρ·c ≈ 1, min 1, 10 s down: Serve drops the
    node to one worker in lulls and the queue that builds sets the p95."""
    problem, choice = _cloud(20, 0.075)
    fixed = simulate(problem, choice, requests=4000, seed=1)
    scaled = simulate(problem, choice, requests=4000, seed=1, autoscale=AutoscalePolicy())
    assert scaled.latency_p95_s > 1.5 * fixed.latency_p95_s
    mean, fewest, most = scaled.servers["cloud"]
    assert mean < 2.5 and fewest == 1 and most == 3
    again = simulate(problem, choice, requests=4000, seed=1, autoscale=AutoscalePolicy())
    assert again == scaled  # deterministic per seed


def test_a_removed_server_finishes_its_batch_first() -> None:
    servers = _Servers(3, AutoscalePolicy())
    servers.running, servers.busy = 3, 2
    servers.remove(5.0, 2)  # one idle goes now, one busy once its batch is done
    assert (servers.running, servers.retiring) == (2, 1)
    assert servers.finish(6.0) is False and servers.running == 1
    assert servers.finish(7.0) is True and servers.running == 1


def test_autoscaled_nodes_are_checked_against_the_fleet() -> None:
    problem, choice = _cloud(2, 0.1)
    with pytest.raises(InputError, match="'cloud'"):
        simulate(problem, choice, requests=1000, autoscale=AutoscalePolicy(min_replicas=4))
    with pytest.raises(InputError, match="edge") as caught:
        simulate(problem, choice, requests=1000, autoscale={"edge": AutoscalePolicy()})
    assert caught.value.field == "autoscale"


def test_advice_is_c_when_nothing_less_holds_and_one_at_a_tiny_load() -> None:
    problem, choice = _cloud(20, 0.075)
    busy = price_autoscaling(problem, choice, AutoscalePolicy(), requests=3000, seed=1)
    (cloud,) = busy.advice
    assert cloud.min_replicas == 3 and cloud.servers == (3.0, 3, 3)
    assert busy.cost > 0.5 and busy.advised.latency_p95_s == busy.fixed.latency_p95_s
    problem, choice = _cloud(4, 0.5, batch_s=0.01)  # ρ·c = 0.02
    idle = price_autoscaling(problem, choice, AutoscalePolicy(), requests=2000, seed=1)
    (cloud,) = idle.advice
    assert cloud.min_replicas == 1 and cloud.servers[0] < 1.5
    assert cloud.latency_p95_s <= 1.1 * idle.fixed.latency_p95_s


def test_advice_finds_a_minimum_between() -> None:
    """At ρ·c ≈ 2.1 of 6 workers and a short delay, a minimum of 1 is not enough; the
    minimum must cover the load's peaks within a worker's start, not its mean."""
    problem, choice = _cloud(40, 0.075, replicas=6)
    priced = price_autoscaling(problem, choice, AutoscalePolicy(), requests=4000, seed=1)
    (cloud,) = priced.advice
    assert 1 < cloud.min_replicas < 6
    assert cloud.latency_p95_s <= 1.1 * priced.fixed.latency_p95_s


def test_cli_simulate_prices_the_autoscaler(tmp_path: Path) -> None:
    """The example testbed's plan (cloud ρ·c ≈ 1.05 of 3): autoscaled from one worker at a
    10 s downscale delay its p95 rises and only 3 keeps it; a minimum above the edge's one
    replica is refused naming the node."""
    args = ["fleet", "simulate", str(EXAMPLES / "fleet-testbed.yaml"), "--devices", "20"]
    args += ["--steps", "1", "--requests", "3000", "--plot", str(tmp_path / "p.png")]
    done = CliRunner().invoke(app, [*args, "--autoscale"], terminal_width=200)
    assert done.exit_code == 0, done.output
    assert "Autoscaled workers at the plan's load (20 devices" in done.output
    cloud = next(line for line in done.output.splitlines() if line.startswith("│ cloud"))
    cells = [c.strip() for c in cloud.split("│")[1:-1]]
    assert cells[1] == "3" and cells[4] == "3" and cells[6] == "3.00 (3–3)"
    assert float(cells[3].split()[0]) < 3 and "(1–3)" in cells[3]
    refused = CliRunner().invoke(app, [*args, "--autoscale", "--min-workers", "2"])
    assert isinstance(refused.exception, InputError) and "'edge'" in str(refused.exception)
    assert "Projection" not in refused.output  # refused before simulating


def test_window_p95s_are_what_runs_of_that_length_would_measure() -> None:
    """One window over the counted time is the run's p95; with the autoscaler the windows'
    p95s spread far wider than at the planned replicas (Serve's place varies by window)."""
    problem, choice = _cloud(20, 0.075)
    horizon = 4000 / problem.total_rate_hz
    whole = simulate(problem, choice, requests=4000, seed=1, window_s=0.9 * horizon)
    assert whole.window_p95_s == (whole.latency_p95_s,)
    fixed = simulate(problem, choice, requests=4000, seed=1, window_s=60)
    scaled = simulate(
        problem, choice, requests=4000, seed=1, window_s=60, autoscale=AutoscalePolicy()
    )
    assert len(fixed.window_p95_s) == len(scaled.window_p95_s) == int(0.9 * horizon // 60)

    def spread(windows: tuple[float, ...]) -> float:
        low, high = np.quantile(windows, [0.1, 0.9])
        return float(high - low)

    assert spread(scaled.window_p95_s) > 3 * spread(fixed.window_p95_s)
    with pytest.raises(InputError, match="window_s"):
        simulate(problem, choice, requests=1000, window_s=0)
