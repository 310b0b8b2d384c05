"""Where the hard budget case's relaxation gap comes from: placement knapsack or quantization.

Case e's slow draws spend their time in the least-energy solve proving its bound. This script
splits that solve's gap into parts, each an exact optimum of a relaxed problem solved by the
planner itself, so the next attempt knows what an exact bound has to capture:

- ``lp``: the LP relaxation's optimum (the bound HiGHS starts from);
- ``no_noise``: the least energy with the noise bound dropped (the placement knapsack alone);
- ``optimum``: the least energy under every bound;
- ``no_budget``: the least energy without the device-energy budget, and its device energy.

It also prints the graph's cut width in topological order (most tensors alive between two
consecutive blocks), which decides whether a dynamic programme over the order is tractable.
Usage: ``python bench/bench_hard_gap.py [seeds…]`` (default 3 5 6); times are wall seconds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import highspy
import numpy as np

from bench_planner import HARD_BLOCKS, HARD_BUDGET_SHARE, HARD_TINY, synthetic_problem
from qsplit.model import LayerGraph
from qsplit.plan import PlanningProblem, plan
from qsplit.plan._highs import Matrix, new_highs
from qsplit.plan._milp import build

ROOT = Path(__file__).resolve().parents[1]


def cut_width(graph: LayerGraph) -> int:
    """Most tensors produced before and read at or after some position of the block order."""
    position = {name: i for i, name in enumerate(graph.block_names)}
    end = len(position)
    alive = np.zeros(end + 1, dtype=int)
    for tensor in graph.tensors:
        if tensor.producer is None:
            continue
        last = max([position[c] for c in tensor.consumers] + [end] * tensor.is_model_output)
        alive[position[tensor.producer] + 1 : last + 1] += 1
    return int(alive.max())


def lp_bound(problem: PlanningProblem) -> float:
    """The least-energy solve's LP relaxation optimum under the problem's bounds."""
    form = build(problem)
    variables = form.prob.variables()
    matrix = Matrix.of(form.prob, variables)
    model = new_highs()
    matrix.load(model, integral=False)
    costs = np.zeros(len(variables))
    for var, coefficient in form.energy.items():
        costs[var.index] = coefficient
    model.changeColsCost(len(costs), np.arange(len(costs), dtype=np.int32), costs)
    model.run()
    assert model.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return model.getInfo().objective_function_value + form.energy.constant


def least_energy(problem: PlanningProblem) -> tuple[float, float, float]:
    """Energy, device energy and wall time of the first (least-energy) solve's plan."""
    energy_only = replace(problem, w_latency=0.0, w_energy=1.0)
    start = time.perf_counter()
    result = plan(energy_only, with_baselines=False, time_limit_s=None)
    wall = time.perf_counter() - start
    return result.predicted.energy_j, result.predicted.device_energy_j, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="*", type=int, default=[3, 5, 6])
    args = parser.parse_args()
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")
    for seed in args.seeds:
        problem = synthetic_problem(
            HARD_BLOCKS, 2, HARD_BUDGET_SHARE, activations=HARD_TINY, seed=seed
        )
        bounds = problem.bounds
        lp = lp_bound(problem)
        no_noise = least_energy(replace(problem, bounds=replace(bounds, noise_max=None)))
        optimum = least_energy(problem)
        free = replace(bounds, device_energy_budget_j=None)
        no_budget = least_energy(replace(problem, bounds=free))
        print(
            f"seed {seed}: cut width {cut_width(problem.graph)}, budget "
            f"{bounds.device_energy_budget_j:.4f} J; least energy: lp {lp:.4f}, "
            f"no_noise {no_noise[0]:.4f} (E0 {no_noise[1]:.4f}, {no_noise[2]:.1f} s), "
            f"optimum {optimum[0]:.4f} (E0 {optimum[1]:.4f}, {optimum[2]:.1f} s), "
            f"no_budget {no_budget[0]:.4f} (E0 {no_budget[1]:.4f}, {no_budget[2]:.1f} s)",
            flush=True,
        )
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
