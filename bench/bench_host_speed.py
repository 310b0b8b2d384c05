"""Host independence of the demo: the same plans and latencies on a host half as fast.

Node speeds are absolute (``reference_time``); the testbed measures its host and pads each node
to its speed. So ``qsplit demo`` on a slower host must choose the same plans and measure the
same latencies. This runs the demo twice in child processes:

1. ``normal``: as the machine is;
2. ``slow``: inside a cgroup-v1 CPU quota (needs root) of ``--cpu`` of one CPU (default 0.6:
   YOLO11n then took 2.1× as long on the 2-core VM; 0.5 made it 2.4×) per ``--period-us``
   (default 2 ms). A quota is not a slower CPU: a run shorter than the quota left in the
   current period goes at full speed, so the minima of short block runs catch unthrottled
   runs while long components are throttled. With a 10 ms period the 34 YOLO11n blocks' minima
   summed to 0.77 of the whole model's minimum, with 2 ms to 0.94; 1 ms is the kernel's
   smallest quota. The child and everything it starts (supervisor,
   agents) are in the cgroup, so the testbed measures the slowed host and pads less. The
   slowdown reported is the ratio of the two runs' host reference times. One quota shared by
   every process is a host with ``--cpu`` CPUs *in all*: the link emulators, the requester and
   an agent computing take CPU time from each other, which the 2-core host does not. With
   ``--per-process`` every process gets its own quota instead (a cgroup each, placed as it
   appears): the host's cores each ``1/cpu`` times slower, which is what a slower host is.

Each run makes its nodes' profiles afresh (its own profile cache): for the bundled YOLO11n that
is the shipped profile scaled to each node's reference time, so the host is not measured for
them, only at ``testbed up`` for the padding factors (a model without a shipped profile would be
timed on each host). Links are measured live in each run. The noise model, which does not
depend on the host's speed, is fitted once and copied into the second run's cache. The
comparison: every entry (scenario, label) must have the same placement and quantized blocks in
both runs, and its measured median latency must agree within ``--tolerance`` (10 %).

``--dilation K`` runs the slowed demo with time dilated ``K×`` (every node and link ``K×``
slower, :func:`qsplit.testbed.dilated_infra`) and compares its times divided by ``K``: the way
to run the scenario on a host that has too little headroom for its fastest node (``testbed
up`` refuses it, :data:`qsplit.profile.HEADROOM`). Plans must still be identical.
``--normal-dilation`` does the same for the normal run, for a machine too busy to emulate the
scenario in real time even unthrottled.

``--short`` runs a shortened demo (one latency weight, noise bounds 0 and 1, no link
precision, 2 requests per configuration, 16 noise samples of 4 candidate blocks, 5 profile
repetitions) for a machine too busy for two full demos.

Usage: python bench/bench_host_speed.py --out DIR [--cpu 0.6] [--period-us 2000] [--short]
       [--per-process] [--tolerance 0.1] [--dilation 1] [--normal-dilation 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpu", type=float, default=0.6, help="quota, in CPUs")
    parser.add_argument("--period-us", type=int, default=2000, help="quota period")
    parser.add_argument(
        "--per-process",
        action="store_true",
        help="give every process of the slowed demo its own quota (a slower CPU per process) "
        "instead of one quota shared by all of them",
    )
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--dilation", type=float, default=1.0, help="of the slowed run")
    parser.add_argument("--normal-dilation", type=float, default=1.0, help="of the normal run")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _run_demo(args.child, args.short, args.dilation)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    normal = _demo(args.out / "normal", args.short, args.normal_dilation, quota=None)
    shutil.copytree(args.out / "normal" / "cache" / "noise", args.out / "slow" / "cache" / "noise")
    quota = Quota(args.cpu, args.period_us, args.per_process)
    slow = _demo(args.out / "slow", args.short, args.dilation, quota=quota)
    result = compare(normal, slow, args.tolerance)
    result["cpu_quota"] = {
        "cpus": args.cpu,
        "period_us": args.period_us,
        "per_process": args.per_process,
        "processes": quota.processes,
    }
    result["dilation"] = {"normal": args.normal_dilation, "slow": args.dilation}
    result["short"] = args.short
    (args.out / "compare.json").write_text(json.dumps(result, indent=2))
    _print(result)


def _run_demo(folder: Path, short: bool, dilation: float) -> None:
    """In the child: the demo with the default scenarios, optionally shortened or dilated."""
    from qsplit.demo import DemoConfig, run_demo

    config = DemoConfig(out=folder / "run", cache=folder / "cache", dilation=dilation)
    if short:
        config = replace(
            config,
            w_latency=(1.0,),
            noise_fractions=(0.0, 1.0),
            requests=2,
            noise_samples=16,
            noise_top_k=4,
            link_tensors=0,  # 16 samples fit 4 block variables, not 4 more link ones
            profile_repetitions=5,
        )
    run_demo(config)


def _demo(folder: Path, short: bool, dilation: float, quota: Quota | None) -> Path:
    """Run the demo in a child process (under ``quota`` if given); its run directory."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--out", str(folder), "--child", str(folder)]
    command += ["--dilation", repr(dilation)]
    if short:
        command.append("--short")
    if quota is None:
        subprocess.run(command, check=True)
        return folder / "run"
    with quota:
        # In the child before exec: it (and, under one shared quota, its descendants) throttled.
        child = subprocess.Popen(command, preexec_fn=lambda: quota.enter(os.getpid()))
        last_new = time.monotonic()
        while child.poll() is None:
            if quota.follow(child.pid):
                last_new = time.monotonic()
            settled = time.monotonic() - last_new > SETTLED_S
            time.sleep(SETTLED_FOLLOW_S if settled else FOLLOW_S)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, command)
    return folder / "run"


FOLLOW_S = 0.02
"""How often new processes of the slowed demo are given their own quota (``--per-process``)
while processes are appearing: the testbed's agents profile and pad only after they have
started and been asked to."""
SETTLED_S = 2.0
SETTLED_FOLLOW_S = 0.5
"""How often once no process has appeared for :data:`SETTLED_S` (the testbed is up). Polling
at :data:`FOLLOW_S` all along cost this unthrottled process ~6 ms of CPU per scan of /proc, a
quarter of a core beside the quota'd agents on the 2-core VM; a quota with a 2 ms period
delivers well under its share when other work competes for the core (a component measured
1.9-2.7× its CPU time in wall time under 0.6 CPU at load ~2.3, 1.6-1.7× with a 20 ms period,
where 1/0.6 = 1.67×)."""


class Quota:
    """A cgroup-v1 CPU quota of ``cpus`` per ``period_us``: one cgroup for the demo and every
    process it starts (their CPU time shared: a host of ``cpus`` CPUs in all), or with
    ``per_process`` one cgroup per process (each on a CPU ``1/cpus`` times slower, as on a
    slower host with as many cores: the link emulators and the requester then take no CPU time
    from the agents' quota)."""

    def __init__(self, cpus: float, period_us: int, per_process: bool) -> None:
        self.cpus, self.period_us, self.per_process = cpus, period_us, per_process
        self.root = CGROUP_ROOT / f"qsplit-bench-{os.getpid()}"
        self._placed: set[int] = set()

    @property
    def processes(self) -> int:
        """Processes given a quota of their own (``per_process``)."""
        return len(self._placed)

    def __enter__(self) -> Quota:
        self.root.mkdir()
        if not self.per_process:
            self._limit(self.root)
        return self

    def __exit__(self, *_: object) -> None:
        for group in self.root.glob("p*"):
            if group.is_dir():
                _drain(group, self.root.parent)
                group.rmdir()
        _drain(self.root, self.root.parent)
        self.root.rmdir()

    def enter(self, pid: int) -> None:
        """Put process ``pid`` under the quota (its own, with ``per_process``)."""
        group = self.root
        if self.per_process:
            group = self.root / f"p{pid}"
            group.mkdir(exist_ok=True)
            self._limit(group)
        (group / "cgroup.procs").write_text(str(pid))

    def follow(self, ancestor: int) -> bool:
        """With ``per_process``: give every descendant of ``ancestor`` not yet placed its own
        quota (a forked process starts in its parent's cgroup); whether there was one."""
        if not self.per_process:
            return False
        new = _descendants(ancestor) - self._placed
        for pid in new:
            try:
                self.enter(pid)
            except OSError:  # it exited meanwhile
                continue
            self._placed.add(pid)
        return bool(new)

    def _limit(self, group: Path) -> None:
        (group / "cpu.cfs_period_us").write_text(str(self.period_us))
        (group / "cpu.cfs_quota_us").write_text(str(round(self.period_us * self.cpus)))


def _descendants(ancestor: int) -> set[int]:
    """Every live process below ``ancestor``, from each thread's ``children`` in /proc: a walk
    of the demo's few processes instead of a read of every process on the machine."""
    found: set[int] = set()
    frontier = [ancestor]
    while frontier:
        pid = frontier.pop()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:  # it exited meanwhile
            continue
        for task in tasks:
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            frontier += children - found
            found |= children
    return found


def _drain(group: Path, to: Path) -> None:
    """Move what is left in ``group`` (processes a killed testbed left) to ``to``."""
    for pid in (group / "cgroup.procs").read_text().split():
        with contextlib.suppress(OSError):
            (to / "cgroup.procs").write_text(pid)


def compare(normal: Path, slow: Path, tolerance: float) -> dict[str, Any]:
    """The two run directories side by side: every plan file (scenario, weight, noise bound)
    with the same placement and quantized blocks? For the entries (plans and baselines) run
    in the same configuration in both, how far apart are their measured median latencies?"""
    runs = {
        name: json.loads((run / "run.json").read_text())
        for name, run in (("n", normal), ("s", slow))
    }
    plans = []
    for path in sorted((normal / "plans").glob("*/*.json")):
        name = str(path.relative_to(normal / "plans"))
        a, b = (json.loads((run / "plans" / name).read_text()) for run in (normal, slow))
        plans.append(
            {
                "plan": name,
                "same": _configuration(a) == _configuration(b),
                "same_placement": a["assignment"] == b["assignment"],
                "quantized_only_in_one": sorted(set(a["quantized"]) ^ set(b["quantized"])),
            }
        )
    entries = {name: {e["id"]: e for e in run["entries"]} for name, run in runs.items()}
    rows = []
    for entry_id in sorted(set(entries["n"]) & set(entries["s"])):
        a, b = entries["n"][entry_id], entries["s"][entry_id]
        if _configuration(a) != _configuration(b) or not (a["measured"] and b["measured"]):
            continue
        k = [run["settings"].get("dilation", 1.0) for run in runs.values()]
        measured = [_ms(a["measured"], k[0]), _ms(b["measured"], k[1])]
        rows.append(
            {
                "id": entry_id,
                "predicted_ms": [_ms(a["predicted"], k[0]), _ms(b["predicted"], k[1])],
                "measured_ms": measured,
                "measured_ratio": measured[1] / measured[0],
            }
        )
    deviations = [abs(r["measured_ratio"] - 1) for r in rows]
    hosts = {"normal": runs["n"]["settings"]["testbed"], "slow": runs["s"]["settings"]["testbed"]}
    return {
        "host": hosts,
        "slowdown": hosts["slow"]["host_reference_ms"] / hosts["normal"]["host_reference_ms"],
        "same_plans": all(p["same"] for p in plans),
        "plans": plans,
        "entries": rows,
        "latency_deviation": {
            "median": statistics.median(deviations) if deviations else None,
            "max": max(deviations) if deviations else None,
            "within_tolerance": bool(deviations) and max(deviations) <= tolerance,
            "tolerance": tolerance,
        },
    }


def _configuration(item: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    return item["assignment"], sorted(item["quantized"])


def _ms(costs: dict[str, Any], dilation: float) -> float:
    """The entry's latency in the scenario's own time (a dilated run's ÷ its factor)."""
    return round(costs["latency_s"] / dilation * 1e3, 1)


def _print(result: dict[str, Any]) -> None:
    for name, host in result["host"].items():
        print(
            f"{name}: host {host['host_reference_ms']} ms (whole runs "
            f"{host.get('host_whole_run_ms')} ms), factors {host['padding_factors']}"
        )
    print(f"host slowdown {result['slowdown']:.2f}×")
    for plan in result["plans"]:
        differ = (
            "" if plan["same"] else f" quantized in one run only: {plan['quantized_only_in_one']}"
        )
        placement = "same placement" if plan["same_placement"] else "OTHER PLACEMENT"
        print(
            f"{plan['plan']:36s} {'same' if plan['same'] else 'DIFFERENT':9s} {placement}{differ}"
        )
    for row in result["entries"]:
        normal, slow = row["measured_ms"]
        print(f"{row['id']:56s} {normal:>8} {slow:>8} ms {row['measured_ratio'] - 1:+.1%}")
    deviation = result["latency_deviation"]
    same = sum(p["same"] for p in result["plans"])
    print(
        f"same plans: {same} of {len(result['plans'])}; latency deviation (same configurations)"
        f" median {deviation['median']:.1%}, max {deviation['max']:.1%}"
        f" (tolerance {deviation['tolerance']:.0%})"
    )


if __name__ == "__main__":
    main()
