"""A content-addressed cache of slow results (profiles, noise models), so re-runs are fast.

A result is stored under a hash of everything it depends on (model hash, node, reference time,
settings, library versions, and the source of the qsplit packages that compute it, shipped
profiles included): a changed
input or a changed algorithm is a different key, never a stale hit.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime as ort

import qsplit

_PRODUCERS = {"profiles": ("profile", "quant", "assets/profiles"), "noise": ("quant",)}
"""The qsplit packages whose code (or shipped data) computes each kind of result."""


def _source_digest(packages: tuple[str, ...]) -> str:
    root = Path(qsplit.__file__).parent
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*")):
            if path.suffix not in (".py", ".json"):
                continue
            digest.update(path.read_bytes())
    return digest.hexdigest()


class Cache:
    """Results as folders of files under ``folder/<kind>/<key hash>/``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, kind: str, key: dict[str, Any]) -> Path:
        """Where the result of ``kind`` for ``key`` lives (whether or not it exists yet)."""
        stamped = {
            **key,
            "qsplit": qsplit.__version__,
            "code": _source_digest(_PRODUCERS[kind]),
            "onnxruntime": ort.__version__,
        }
        digest = hashlib.sha256(json.dumps(stamped, sort_keys=True).encode()).hexdigest()
        return self.folder / kind / digest[:24]

    def fetch(
        self, kind: str, key: dict[str, Any], make: Callable[[Path], None]
    ) -> tuple[Path, bool]:
        """The folder of the result for ``key``, made with ``make(folder)`` unless cached, and
        whether it was a hit.

        ``make`` fills a temporary folder that is renamed into place only once complete, so an
        interrupted run never leaves a half-written result that later runs would trust.
        """
        path = self.path(kind, key)
        if path.is_dir():
            return path, True
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        make(partial)
        partial.rename(path)
        return path, False

    def copy_into(
        self, kind: str, key: dict[str, Any], make: Callable[[Path], None], to: Path
    ) -> bool:
        """Copy the result's files into the folder ``to`` (making it first if needed)."""
        folder, hit = self.fetch(kind, key, make)
        shutil.copytree(folder, to, dirs_exist_ok=True)
        return hit
