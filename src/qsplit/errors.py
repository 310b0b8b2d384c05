"""The one error tree of qsplit.

Every error a user can cause is a :class:`QsplitError`; the CLI prints its message on one line
and exits with code 2, without a traceback. Errors carry their context (file, field, fix) so the
message can say what went wrong *and* what to do about it.

::

    QsplitError
    ├── InputError              bad user input (file, field, fix)
    │   ├── ModelError          an ONNX file that cannot be used as given
    │   └── AssignmentError     a block→node assignment that does not fit the graph
    ├── SchemaError             a qsplit JSON file of the wrong kind or version
    ├── InfeasibleError         constraints that no plan satisfies (which one, least feasible value)
    ├── SolverError             the MILP solver failed for a reason other than infeasibility
    ├── TransportError          a peer (agent) unreachable, crashed or misbehaving
    └── DependencyError         an optional extra is needed but not installed
"""

from __future__ import annotations

from pathlib import Path


class QsplitError(Exception):
    """Base of every error qsplit raises on purpose."""


class InputError(QsplitError):
    """A user-supplied file or argument is wrong.

    The message reads ``FILE: FIELD: PROBLEM. FIX`` with the parts that are known.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.field = field
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [p for p in (self.file, self.field) if p]
        text = ": ".join([*parts, self.problem])
        if self.fix:
            text = f"{text.rstrip('.')}. Fix: {self.fix}"
        return text


class ModelError(InputError):
    """An ONNX model that cannot be loaded, shape-inferred or analysed as given."""


class AssignmentError(InputError):
    """An assignment that names unknown blocks or nodes, or leaves blocks unassigned."""


class SchemaError(InputError):
    """A JSON file that is not the expected qsplit kind, or of an unsupported schema version."""


class InfeasibleError(QsplitError):
    """No plan satisfies the constraints.

    ``constraint`` names the binding constraint; ``least_feasible`` is the nearest value of its
    bound that admits a plan, when it could be computed.
    """

    def __init__(
        self,
        message: str,
        *,
        constraint: str | None = None,
        least_feasible: float | None = None,
    ) -> None:
        self.constraint = constraint
        self.least_feasible = least_feasible
        super().__init__(message)


class SolverError(QsplitError):
    """The solver stopped without a usable answer for a reason other than infeasibility."""


class TransportError(QsplitError):
    """A peer could not be reached, crashed, timed out or sent something invalid."""

    def __init__(self, message: str, *, peer: str | None = None) -> None:
        self.peer = peer
        super().__init__(message)


class DependencyError(QsplitError):
    """An optional dependency is needed for this command but is not installed."""
