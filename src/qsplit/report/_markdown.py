"""Render a report :class:`~qsplit.report._document.Document` as GitHub-flavoured Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterable

from qsplit.report._document import Block, Bullets, Document, Heading, Image, Link, Paragraph, Table

_SPECIAL = re.compile(r"([\\`*\[\]<>|])")


def escape(text: str) -> str:
    """Backslash-escape what Markdown would read as markup (emphasis, links, HTML, cells); a
    line break would end a paragraph or a table row, so it becomes a space."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.splitlines()))


def to_markdown(document: Document) -> str:
    parts = [f"# {escape(document.title)}", *(_block(b) for b in document.blocks)]
    return "\n\n".join(parts) + "\n"


def _block(block: Block) -> str:
    match block:
        case Heading(text, level):
            return f"{'#' * level} {escape(text)}"
        case Paragraph(text, strong):
            return f"**{escape(text)}**" if strong else escape(text)
        case Bullets(items):
            return "\n".join(f"- {_item(item)}" for item in items)
        case Table():
            return _table(block)
        case Image(src, alt):
            return f"![{escape(alt)}]({src})"
    raise TypeError(f"not a report block: {block!r}")


def _item(item: str | Link) -> str:
    return f"[{escape(item.text)}]({item.href})" if isinstance(item, Link) else escape(item)


def _table(table: Table) -> str:
    rule = ["---:" if i in table.right_aligned else "---" for i in range(len(table.header))]
    lines = [_row(map(escape, table.header)), _row(rule)]
    lines += [_row(map(escape, row)) for row in table.rows]
    return "\n".join(lines)


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"
