"""Render a report :class:`~qsplit.report._document.Document` as one self-contained HTML page.

The style sheet is inline and images are linked relative to the page, so the ``report/``
folder can be opened or archived as it is, without a server or network.
"""

from __future__ import annotations

from html import escape

from qsplit.report._document import Block, Bullets, Document, Heading, Image, Link, Paragraph, Table

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 80rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
"""


def to_html(document: Document) -> str:
    body = "\n".join(_block(b) for b in document.blocks)
    title = escape(document.title)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    )


def _block(block: Block) -> str:
    match block:
        case Heading(text, level):
            return f"<h{level}>{escape(text)}</h{level}>"
        case Paragraph(text, strong):
            return f"<p><strong>{escape(text)}</strong></p>" if strong else f"<p>{escape(text)}</p>"
        case Bullets(items):
            return "<ul>\n" + "\n".join(f"<li>{_item(i)}</li>" for i in items) + "\n</ul>"
        case Table():
            return _table(block)
        case Image(src, alt):
            return f'<p><img src="{escape(src)}" alt="{escape(alt)}"></p>'
    raise TypeError(f"not a report block: {block!r}")


def _item(item: str | Link) -> str:
    if isinstance(item, Link):
        return f'<a href="{escape(item.href)}">{escape(item.text)}</a>'
    return escape(item)


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    rows = [
        "".join(
            f'<td class="num">{escape(c)}</td>'
            if i in table.right_aligned
            else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        for row in table.rows
    ]
    body = "\n".join(f"<tr>{r}</tr>" for r in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
