"""``qsplit run``'s Ray options are checked before anything starts (no Ray needed); the
command line's entry point turns these InputErrors into one line and exit code 2."""

from __future__ import annotations

from typer.testing import CliRunner

from qsplit.cli import app
from qsplit.errors import InputError

RUN = ("run", "plan.json", "--infra", "i.yaml", "--model", "m.onnx", "--random", "1")


def test_a_ray_address_needs_the_ray_backend() -> None:
    result = CliRunner().invoke(app, [*RUN, "--ray-address", "127.0.0.1:6379"])
    assert isinstance(result.exception, InputError)
    assert "--ray-address needs --backend ray" in str(result.exception)


def test_the_batch_size_must_be_positive() -> None:
    result = CliRunner().invoke(app, [*RUN, "--backend", "ray", "--max-batch", "0"])
    assert isinstance(result.exception, InputError)
    assert "--max-batch" in str(result.exception)
