"""Time dilation: a scenario ``k×`` slower in every node and link, for a host too slow for it.

Padding can only lengthen a run, so a host can emulate a node only if it runs the node's
components faster than the node (with headroom, :data:`qsplit.profile.HEADROOM`). Where it
cannot — a CI runner at half speed, a CPU quota — the same scenario can still be run with every
duration stretched by one factor ``k``: each node's ``reference_time`` ``× k``, each link's
latency ``× k`` and bandwidth ``÷ k``. Every compute and transfer time of every plan is then
``k×`` the original's and every energy too (same powers, ``k×`` the time), so the normalised
objective, and with it the plan, is unchanged; measured latencies divided by ``k`` are the
scenario's. What does not scale is what the host adds on its own (a message's local cost, the
emulators' ±1 ms), which shrinks by ``k`` relative to the rest.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from qsplit.errors import InputError
from qsplit.infra import load_infra, parse_bandwidth, parse_duration


def dilated_infra(path: str | Path, factor: float, out_dir: str | Path) -> Path:
    """A copy of the infrastructure file ``path`` in ``out_dir`` with time dilated ``factor×``.

    ``factor`` 1 returns ``path`` itself. The copy keeps the file's name and everything else
    (addresses, powers, memory, routes); its header says what it was made from.
    """
    if not math.isfinite(factor) or factor < 1.0:
        raise InputError(
            f"time dilation factor {factor} is not a number ≥ 1",
            field="dilation",
            fix="give 1 (real time) or a larger factor, e.g. 2 on a host half as fast",
        )
    path = Path(path)
    load_infra(path)  # bad input is reported against the user's file, not the copy
    if factor == 1.0:
        return path
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    for node in document["nodes"]:
        if node.get("reference_time") is not None:
            node["reference_time"] = _ms(parse_duration(node["reference_time"]) * factor)
    for link in document.get("links") or []:
        link["latency"] = _ms(parse_duration(link["latency"]) * factor)
        link["bandwidth"] = parse_bandwidth(link["bandwidth"]) / factor
    target = Path(out_dir) / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Written by qsplit from {path.resolve()} with time dilated {factor:g}x: every\n"
        f"# reference_time and link latency {factor:g}x, every bandwidth /{factor:g}.\n"
    )
    target.write_text(header + yaml.safe_dump(document, sort_keys=False))
    return target


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.6g}ms"
