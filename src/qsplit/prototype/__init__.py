"""Importing the original research prototype's measured data as qsplit input files.

The prototype (``reference/prototype``) published, per model, a profiled ONNX graph with a
fitted noise regressor, per-node execution times on each machine and an energy configuration.
:func:`import_prototype` turns them into a LayerGraph, one ComputeProfile per node, a
NoisePolynomial and the scenario's infrastructure, so qsplit can plan on real measurements and be
compared with the prototype's own plans.
"""

from qsplit.prototype._coarsen import block_mapping, coarsen_noise, coarsen_profile
from qsplit.prototype._import import PrototypeImport, import_prototype

__all__ = [
    "PrototypeImport",
    "block_mapping",
    "coarsen_noise",
    "coarsen_profile",
    "import_prototype",
]
