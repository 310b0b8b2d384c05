"""The prototype's three-tier measurement scenario as a qsplit infrastructure file.

Numbers are the published setup (prototype README, DESIGN.md "Local testbed"): one-way delays
device↔edge 5 ms, device↔cloud 55 ms, edge↔cloud 50 ms; egress shaping per *sender* device
5, edge 20, cloud 100 "MB/s"; powers from ``energy_config.ini``.

Two deliberate readings, so that qsplit prices the same data the way the prototype meant it:

* Bandwidths are written in MiB/s. The prototype divided its tensor sizes, which are MiB (see
  :mod:`qsplit.prototype._convert`), by these figures, so "5 MB/s" meant 5 MiB/s there.
* ``TRANS_ENERGY_PER_SEC`` is written as the sender's transmit power in watts, charged for the
  duration of each transfer (E = P_x · t). In the prototype the value is a coefficient per MB/s
  of bandwidth that its code nevertheless multiplied with seconds, i.e. used as watts; the
  papers' table also lists it in W. Keeping the number and the unit W reproduces the prototype's
  energy figures; it is not a measured radio power.

Memory was not published; the machines' nominal RAM (GCP e2-standard-4, c3-standard-4: 16 GB;
n1-standard-4: 15 GB) is used, so memory never binds for a 240 MB model, as in the prototype.
"""

from __future__ import annotations

from typing import Any

import yaml

from qsplit.prototype._files import PrototypeFiles

DEVICE = "device"

_EGRESS_MIB_PER_S = {"device": 5, "edge": 20, "cloud": 100}
_ONE_WAY_MS = {
    frozenset({"device", "edge"}): 5,
    frozenset({"device", "cloud"}): 55,
    frozenset({"edge", "cloud"}): 50,
}
_MEMORY = {"device": "16GB", "edge": "16GB", "cloud": "15GB"}


def infra_document(files: PrototypeFiles) -> dict[str, Any]:
    """The infrastructure (schema version 1) of the prototype's device–edge–cloud scenario."""
    names = list(_EGRESS_MIB_PER_S)
    nodes = [
        {
            "name": name,
            "role": name,
            "compute_power_w": files.energy[name]["COMP_ENERGY_PER_SEC"],
            "transmit_power_w": files.energy[name]["TRANS_ENERGY_PER_SEC"],
            "memory_bytes": _MEMORY[name],
        }
        for name in names
    ]
    links = [
        {
            "from": sender,
            "to": receiver,
            "bandwidth": f"{_EGRESS_MIB_PER_S[sender]}MiB/s",
            "latency": f"{_ONE_WAY_MS[frozenset({sender, receiver})]}ms",
        }
        for sender in names
        for receiver in names
        if sender != receiver
    ]
    return {"schema_version": 1, "device": DEVICE, "nodes": nodes, "links": links}


def infra_yaml(files: PrototypeFiles) -> str:
    """:func:`infra_document` as YAML text with a header saying where the numbers come from."""
    header = (
        f"# Imported from the research prototype ({files.root}).\n"
        "# Bandwidth = egress shaping of the sender; latency = one-way delay.\n"
        "# transmit_power_w = the prototype's TRANS_ENERGY_PER_SEC, charged as watts per second\n"
        "# of transfer (see qsplit.prototype._scenario for why).\n"
    )
    return header + yaml.safe_dump(infra_document(files), sort_keys=False, width=100)
