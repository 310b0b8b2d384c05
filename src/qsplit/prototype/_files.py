"""Locating and reading the research prototype's result files.

The prototype published its measurements as loose JSON and INI files under one directory (see
``reference/prototype/README.md``). This module knows where each file lives and turns every
problem with them into an :class:`InputError` that names the file and what to do; the converters
in :mod:`qsplit.prototype._convert` then see only parsed, checked data.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsplit.errors import InputError

ROLES: tuple[tuple[str, str], ...] = (("device", "Client"), ("edge", "Edge"), ("cloud", "Cloud"))
"""qsplit node name and the prototype's role name for the same machine."""

SETUP_CPUS: dict[str, float] = {"Client": 1.0, "Edge": 1.0, "Cloud": 0.0}
"""CPU limit of each machine in the published measurement setup (the cloud ran on its GPU).

Used to pick an exec profile when a role has several (the device was also profiled at 0.5 CPU).
"""

_EXEC_PROFILE = re.compile(
    r"^(?P<role>[A-Za-z]+)_(?P<model>.+)_(?P<cpus>\d+(?:\.\d+)?)_exec_profile\.json$"
)


@dataclass(frozen=True)
class ExecProfileFile:
    """One ``Exec_Profile/<Role>_<model>_<cpus>_exec_profile.json`` file, parsed."""

    path: Path
    role: str
    cpus: float
    entries: dict[str, dict[str, float]]
    """Per ONNX node (and the whole-model keys): the timing statistics in seconds."""


@dataclass(frozen=True)
class PrototypeFiles:
    """The parsed inputs for one model: graph and regressor, exec profiles, energy config."""

    root: Path
    model: str
    model_profile_path: Path
    model_profile_sha256: str
    """Hash of the model-profile file, standing in for the unpublished ONNX file's hash."""
    graph: dict[str, Any]
    """The networkx node-link document (``nodes``, ``links``, ``graph.tensor_size_dict``)."""
    regressor: dict[str, Any]
    exec_profiles: dict[str, ExecProfileFile]
    """By prototype role name (``Client``, ``Edge``, ``Cloud``)."""
    energy_path: Path
    energy: dict[str, dict[str, float]]
    """``energy_config.ini`` by lower-case section (``device``, ``edge``, ``cloud``)."""


def read_prototype(
    root: str | Path, model: str, cpus: dict[str, float] | None = None
) -> PrototypeFiles:
    """Read the prototype's files for ``model`` under ``root`` (the directory holding ``results/``).

    ``cpus`` overrides, per role, which exec profile to use when several were measured.
    """
    root = Path(root)
    results = root / "results"
    if not results.is_dir():
        raise InputError(
            "no results/ directory here",
            file=root,
            fix="pass the prototype directory that contains results/ and energy_config.ini",
        )
    profile_path = results / "Model_Profile" / f"{model}.json"
    document = _read_json(profile_path, fix=f"check --model; available: {_models(results)}")
    graph, regressor = document.get("graph"), document.get("regressor")
    if not isinstance(graph, dict) or not isinstance(regressor, dict):
        raise InputError(
            "expected top-level keys 'graph' and 'regressor'",
            file=profile_path,
            fix="pass a Model_Profile file written by the prototype's profiler",
        )
    for key in ("nodes", "links"):
        if not isinstance(graph.get(key), list):
            raise InputError(f"missing list graph.{key}", file=profile_path, fix="regenerate it")
    if not isinstance(graph.get("graph", {}).get("tensor_size_dict"), dict):
        raise InputError(
            "missing graph.graph.tensor_size_dict", file=profile_path, fix="regenerate it"
        )
    choice = {**SETUP_CPUS, **(cpus or {})}
    exec_profiles = {
        role: _pick_exec_profile(results / "Exec_Profile", role, model, choice[role])
        for _, role in ROLES
    }
    energy_path = root / "energy_config.ini"
    return PrototypeFiles(
        root=root,
        model=model,
        model_profile_path=profile_path,
        model_profile_sha256=hashlib.sha256(profile_path.read_bytes()).hexdigest(),
        graph=graph,
        regressor=regressor,
        exec_profiles=exec_profiles,
        energy_path=energy_path,
        energy=_read_energy(energy_path),
    )


def _pick_exec_profile(folder: Path, role: str, model: str, cpus: float) -> ExecProfileFile:
    found: dict[float, Path] = {}
    for path in sorted(folder.glob(f"{role}_*_exec_profile.json")):
        match = _EXEC_PROFILE.match(path.name)
        if match and match["role"] == role and match["model"] == model:
            found[float(match["cpus"])] = path
    if not found:
        raise InputError(
            f"no {role} exec profile for model {model!r}",
            file=folder / f"{role}_{model}_<cpus>_exec_profile.json",
            fix="profile the model on that machine with the prototype, or pick another --model",
        )
    if len(found) == 1:
        chosen = next(iter(found))
    elif cpus in found:
        chosen = cpus
    else:
        raise InputError(
            f"several {role} exec profiles ({', '.join(map(str, sorted(found)))} CPUs) and none "
            f"for {cpus} CPUs",
            file=folder,
            fix=f"choose one with --cpus {role}=<cpus>",
        )
    path = found[chosen]
    entries = _read_json(path, fix="regenerate it with the prototype's profiler")
    if not all(isinstance(v, dict) for v in entries.values()):
        raise InputError("expected an object per node", file=path, fix="regenerate it")
    return ExecProfileFile(path=path, role=role, cpus=chosen, entries=entries)


def _read_energy(path: Path) -> dict[str, dict[str, float]]:
    parser = configparser.ConfigParser()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(
            "file not found", file=path, fix="copy energy_config.ini beside results/"
        ) from None
    try:
        parser.read_string(text, source=str(path))
        energy = {
            section.lower(): {key.upper(): float(value) for key, value in parser[section].items()}
            for section in parser.sections()
        }
    except (configparser.Error, ValueError) as exc:
        raise InputError(
            f"unreadable ({exc})", file=path, fix="restore the original file"
        ) from None
    for node, _ in ROLES:
        for key in ("COMP_ENERGY_PER_SEC", "TRANS_ENERGY_PER_SEC"):
            if key not in energy.get(node, {}):
                raise InputError(
                    f"missing {key}",
                    file=path,
                    field=f"[{node}]",
                    fix=f"add {key} = <watts> to section [{node}]",
                )
    return energy


def _read_json(path: Path, *, fix: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("file not found", file=path, fix=fix) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", file=path, fix=fix) from None


def _models(results: Path) -> str:
    names = sorted(p.stem for p in (results / "Model_Profile").glob("*.json"))
    return ", ".join(names) or "none"
