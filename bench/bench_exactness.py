"""Benchmark: the planner against exhaustive search, on whichever highspy this Python has.

Runs the brute-force suite's instances (``tests/plan/test_brute_force.py``: random small DAGs on
2–3 nodes, both latency models, and the tight-bound instances) through the same check the tests
apply, and prints every disagreement — the goal is none. Run it with each virtual environment
whose HiGHS release should be compared, e.g.

    /work/venvs/h1100/bin/python bench/bench_exactness.py
    /work/venvs/h1160/bin/python bench/bench_exactness.py --seeds 104 105

The answer must not depend on the release (docs/solver.md).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import traceback
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "plan"))

from test_brute_force import (  # the suite's own generator and check
    SEEDS,
    TIGHT_SEEDS,
    _check_against_brute_force,
    random_problem,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", help="only these seeds (default: all)")
    args = parser.parse_args()
    cases = [(s, model, False) for s in SEEDS for model in ("sum", "critical-path")]
    cases += [(s, "sum", True) for s in TIGHT_SEEDS]
    if args.seeds:
        cases = [c for c in cases if c[0] in args.seeds]
    print(
        f"highspy {version('highspy')}, python {platform.python_version()}, {len(cases)} instances"
    )
    disagreements, times = [], []
    for seed, model, tight in cases:
        problem = random_problem(seed, model, tight=tight)
        started = time.perf_counter()
        try:
            _check_against_brute_force(problem)
        except Exception as exc:  # an assertion, or an error the planner should not raise
            where = traceback.extract_tb(exc.__traceback__)[-1]
            what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            case = f"seed {seed} {model}{' tight' if tight else ''}"
            disagreements.append(f"{case}: {what} ({Path(where.filename).name}:{where.lineno})")
        times.append(time.perf_counter() - started)
    for line in disagreements:
        print("  DISAGREES", line)
    print(
        f"disagreements: {len(disagreements)} of {len(cases)} (goal 0); per instance (brute "
        f"force included) median {statistics.median(times) * 1e3:.0f} ms, "
        f"total {sum(times):.1f} s"
    )


if __name__ == "__main__":
    main()
