"""The report as a small document tree, rendered to Markdown and to HTML.

Both files are rendered from this one structure, so they cannot disagree; the tree has only
what the report needs (no inline markup beyond links), which keeps both renderers short and
needs no Markdown library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    strong: bool = False
    """For a statement the reader must not miss, e.g. a missed target."""


@dataclass(frozen=True)
class Link:
    text: str
    href: str
    """Relative to the report's directory."""


@dataclass(frozen=True)
class Bullets:
    items: tuple[str | Link, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right_aligned: frozenset[int] = frozenset()
    """Column indices of numbers."""


@dataclass(frozen=True)
class Image:
    src: str
    """Relative to the report's directory."""
    alt: str


Block = Heading | Paragraph | Bullets | Table | Image


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]
