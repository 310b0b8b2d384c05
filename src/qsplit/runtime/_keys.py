"""CURVE key pairs: the files ``qsplit keys generate`` writes, and the keys a participant
needs (:class:`CurveKeys`), gathered from its secret key file and the infrastructure file.

A pair is two small YAML files: ``NAME.key`` holds both keys and is readable by its owner only
(mode 0600); ``NAME.pub`` holds the line to paste under the node in the infrastructure file.
Only public keys ever go in the infrastructure file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from qsplit.errors import InputError
from qsplit.infra import Infra
from qsplit.infra._keys import check_curve_key
from qsplit.runtime._transport import curve_keypair, curve_public

KEY_FIELD = "curve_public_key"
SECRET_FIELD = "curve_secret_key"


@dataclass(frozen=True)
class CurveKeys:
    """What one participant (agent or requester) needs to speak CURVE."""

    public_key: str
    """Its own public key (Z85)."""
    secret_key: str = field(repr=False)
    """Its own secret key (Z85)."""
    servers: Mapping[str, str]
    """Node name → that node's public key, to connect to its agent."""
    clients: frozenset[str]
    """Public keys allowed to connect to this participant's agent (every node of the
    infrastructure file); an agent refuses any other key."""


@dataclass(frozen=True)
class KeyFiles:
    """What :func:`generate_keys` wrote."""

    secret: Path
    public: Path
    public_key: str


def generate_keys(stem: Path, *, force: bool = False) -> KeyFiles:
    """Write a new pair as ``STEM.key`` (mode 0600) and ``STEM.pub``; an existing file is
    refused unless ``force``."""
    secret_path, public_path = (
        stem.with_name(stem.name + ".key"),
        stem.with_name(stem.name + ".pub"),
    )
    existing = [str(p) for p in (secret_path, public_path) if p.exists()]
    if existing and not force:
        raise InputError(
            f"{' and '.join(existing)} already exist(s)",
            fix="choose another name, or pass --force to replace the pair (agents and clients "
            "using the old one must then be given the new one)",
        )
    public, secret = curve_keypair()
    name = stem.name
    secret_path.parent.mkdir(parents=True, exist_ok=True)
    with _owner_only(secret_path) as handle:
        handle.write(
            f"# qsplit CURVE key pair of {name!r}: SECRET, keep it on that machine only\n"
            f'{KEY_FIELD}: "{public}"\n{SECRET_FIELD}: "{secret}"\n'
        )
    public_path.write_text(
        f"# qsplit CURVE public key of {name!r}: paste under the node in the infra file\n"
        f'{KEY_FIELD}: "{public}"\n'
    )
    return KeyFiles(secret_path, public_path, public)


def _owner_only(path: Path) -> TextIO:
    """``path`` opened for writing, created with mode 0600 (replacing any file there), so the
    secret is never readable by others, not even for a moment."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "w")


def read_secret_key(path: str | Path) -> tuple[str, str]:
    """The (public, secret) pair in a ``.key`` file; :class:`InputError` naming the file and
    field for a missing, empty or damaged one."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InputError(
            f"cannot read the CURVE key file ({exc.strerror})",
            file=path,
            fix="make one with `qsplit keys generate NAME`",
        ) from None
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict) or not data.get(SECRET_FIELD):
        raise InputError(
            "no CURVE secret key in this file (empty, or not a .key file)",
            file=path,
            field=SECRET_FIELD,
            fix="pass the .key file `qsplit keys generate NAME` wrote (not the .pub file)",
        )
    try:
        secret = check_curve_key(data[SECRET_FIELD])
    except ValueError as exc:
        raise InputError(
            str(exc), file=path, field=SECRET_FIELD, fix="regenerate it: qsplit keys generate"
        ) from None
    return curve_public(secret), secret


def curve_keys(infra: Infra, secret_key: str | Path, *, node: str) -> CurveKeys:
    """The keys of ``node`` (an agent's name, or the device for a requester): its pair from the
    file ``secret_key``, checked against the public key the infrastructure file gives it."""
    public, secret = read_secret_key(secret_key)
    listed = infra.node(node).curve_public_key
    if listed != public:
        problem = (
            f"node {node!r} has no {KEY_FIELD}"
            if listed is None
            else f"node {node!r} lists another public key than the one of {str(secret_key)!r}"
        )
        raise InputError(
            problem,
            file=infra.source,
            field=f"nodes[{infra.node_names.index(node)}].{KEY_FIELD}",
            fix=f'write {KEY_FIELD}: "{public}" under it (the matching .pub file)',
        )
    servers = {n.name: n.curve_public_key for n in infra.nodes if n.curve_public_key}
    return CurveKeys(public, secret, servers, frozenset(servers.values()))
