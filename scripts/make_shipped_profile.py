"""Measure the shipped profile of the bundled YOLO11n (``src/qsplit/assets/profiles/``).

Emulated nodes take their per-block times from this file, scaled to their ``reference_time``
(``qsplit.profile.shipped_profile``), so it is measured once, on a quiet machine, rather than by
every host that runs the testbed. Every block is profiled ``--passes`` times (fp32 and int8
alternating, ``--repetitions`` runs each, the emulation's statistic, one thread) and each
block keeps its least time over the passes: other processes only add time, so the least
disturbed pass is the best estimate of each block's undisturbed share. The file records
``host_reference_s`` (Σ fp32, this host's time for the reference workload measured the same
way), the passes and the load average. ``--include`` adds earlier passes (compute profiles of
the same model with the same settings, e.g. one taken while the machine was quiet), so passes
made at different moments can be combined. The file also gets this host's link codec times
(``qsplit.profile.measure_codec_times``, same statistic), so emulated nodes scale those too.
``--codec-only`` adds codec times to an existing file without re-timing its blocks: they are
measured here with this host's reference time, and scaled to the file's host by the ratio of
the two reference times.

Usage: PYTHONPATH=src python scripts/make_shipped_profile.py [--passes 3] [--repetitions 20]
       [--include PROFILE.json ...] [--out src/qsplit/assets/profiles/yolo11n.json]
       [--codec-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
from pathlib import Path

from qsplit.assets import bundled_model_path
from qsplit.model import analyze
from qsplit.profile import (
    EMULATION_STATISTIC,
    BlockTiming,
    ComputeProfile,
    measure_codec_times,
    measure_host,
    profile_compute,
)

OUT = Path(__file__).resolve().parent.parent / "src/qsplit/assets/profiles/yolo11n.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--include", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--codec-only", action="store_true")
    args = parser.parse_args()
    if args.codec_only:
        _add_codec_times(args.out)
        return
    model, graph = analyze(str(bundled_model_path("yolo11n")))
    load_before = os.getloadavg()
    passes = [
        profile_compute(
            model,
            graph,
            node="reference",
            repetitions=args.repetitions,
            statistic=EMULATION_STATISTIC,
            progress=lambda done, total, _, i=i: print(f"pass {i + 1}: {done}/{total}", end="\r"),
        )
        for i in range(args.passes)
    ]
    earlier = [ComputeProfile.load(str(path)) for path in args.include]
    for path, profile in zip(args.include, earlier, strict=True):
        if profile.model_sha256 != graph.model.sha256 or profile.settings["statistic"] != "min":
            parser.error(f"{path}: not a minimum-statistic profile of the bundled YOLO11n")
    passes += earlier
    blocks = {name: _least([p.blocks[name] for p in passes]) for name in graph.block_names}
    host_s = sum(t.fp32_s for t in blocks.values())
    settings = {
        **{k: v for k, v in passes[0].settings.items() if k not in ("padding_factor", "source")},
        "passes": len(passes),
        "pass_repetitions": [p.settings["repetitions"] for p in passes],
        "pass_sums_fp32_s": [sum(t.fp32_s for t in p.blocks.values()) for p in passes],
        "combined": "per block, the least time over the passes",
        "host_reference_s": host_s,
        "load_average": {
            "before": load_before,
            "after": os.getloadavg(),
            "included": [p.settings.get("load_average") for p in earlier],
        },
        "measured": {
            "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "source": "scripts/make_shipped_profile.py",
    }
    codec = measure_codec_times(statistic=EMULATION_STATISTIC)
    profile = ComputeProfile(
        "reference", graph.model.sha256, graph.granularity, blocks, settings, codec
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    profile.save(str(args.out))
    int8 = sum(t.int8_s if t.int8_s is not None else t.fp32_s for t in blocks.values())
    print(f"\nΣ fp32 {host_s * 1e3:.1f} ms, int8 where possible {int8 * 1e3:.1f} ms → {args.out}")


def _add_codec_times(path: Path) -> None:
    """Codec times measured here, scaled to the host ``path`` was measured on."""
    profile = ComputeProfile.load(str(path))
    load_before = os.getloadavg()
    here = measure_host(EMULATION_STATISTIC)
    factor = profile.settings["host_reference_s"] / here.time_s
    codec = measure_codec_times(statistic=EMULATION_STATISTIC).scaled(factor)
    settings = {
        **profile.settings,
        "codec": {
            "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host_reference_s": here.time_s,
            "scale": factor,
            "load_average": {"before": load_before, "after": os.getloadavg()},
        },
    }
    dataclasses.replace(profile, settings=settings, codec=codec).save(str(path))
    print(f"codec times (this host × {factor:.3f}) → {path}")


def _least(timings: list[BlockTiming]) -> BlockTiming:
    """One block's least fp32 and int8 times over the passes, with the median spreads."""
    int8 = [t.int8_s for t in timings if t.int8_s is not None]
    return BlockTiming(
        fp32_s=min(t.fp32_s for t in timings),
        int8_s=min(int8) if int8 else None,
        fp32_spread_s=statistics.median(t.fp32_spread_s for t in timings),
        int8_spread_s=statistics.median(t.int8_spread_s for t in timings),
    )


if __name__ == "__main__":
    main()
