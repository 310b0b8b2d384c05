"""The repository itself: what a fresh clone holds.

A log an installer or a testbed wrote once (``yolo.log`` was committed that way) is noise in
every clone and can leak paths or tokens, so the suite fails when one is tracked. ``.gitignore``
keeps new ones out; this catches a forced add.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STRAY = re.compile(r"(^|/)([^/]*\.(log|out|tmp|pid)|nohup\.out)$")


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True
    ).stdout
    return [name for name in listing.decode().split("\0") if name]


def test_no_stray_logs_are_tracked() -> None:
    stray = [name for name in _tracked_files() if STRAY.search(name)]
    assert not stray, f"remove these leftovers from git (git rm --cached): {stray}"


def test_stray_pattern_matches_what_it_should() -> None:
    assert STRAY.search("yolo.log") and STRAY.search("a/b/nohup.out")
    assert STRAY.search("runs/x.pid")
    assert not STRAY.search("docs/logging.md") and not STRAY.search("src/qsplit/_out.py")


def test_lock_pins_every_requirement_with_a_hash() -> None:
    """The README's commands install requirements/lock.txt with --require-hashes: every direct
    dependency of pyproject.toml (and the dev extra) must be pinned there, with hashes.
    Fix a failure with `bash scripts/refresh-lock.sh`."""
    lock = (ROOT / "requirements" / "lock.txt").read_text()
    pins = {_normalise(p) for p in re.findall(r"^([A-Za-z0-9_.\-]+)==", lock, flags=re.MULTILINE)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = {_normalise(re.match(r"[A-Za-z0-9_.\-]+", w).group()) for w in wanted}
    assert names <= pins, f"not locked: {sorted(names - pins)}"
    entries = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", lock.split("\n", 2)[-1])
    unhashed = [e.split()[0] for e in entries if "==" in e and "--hash=sha256:" not in e]
    assert not unhashed, unhashed


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
