"""Markdown and HTML from one document: same content, each escaped for its own syntax."""

from __future__ import annotations

from qsplit.report._document import Bullets, Document, Heading, Image, Link, Paragraph, Table
from qsplit.report._html import to_html
from qsplit.report._markdown import to_markdown

DOCUMENT = Document(
    "run <1>",
    (
        Heading("Scenario a|b"),
        Paragraph("watch *this*\nline", strong=True),
        Bullets(("plain [x]", Link("run.json", "../run.json"))),
        Table(("entry", "latency"), (("w_lat=1 | <fp32>", "1.0 ms"),), frozenset({1})),
        Image("img/a.png", "a figure"),
    ),
)


def test_markdown_escapes_markup_and_keeps_tables_intact() -> None:
    markdown = to_markdown(DOCUMENT)
    assert markdown.startswith("# run \\<1\\>\n\n## Scenario a\\|b\n")
    assert "**watch \\*this\\* line**" in markdown
    assert "- plain \\[x\\]\n- [run.json](../run.json)" in markdown
    assert "| entry | latency |\n| --- | ---: |\n| w_lat=1 \\| \\<fp32\\> | 1.0 ms |" in markdown
    assert "![a figure](img/a.png)" in markdown


def test_html_escapes_text_and_aligns_numbers() -> None:
    html = to_html(DOCUMENT)
    assert "<title>run &lt;1&gt;</title>" in html
    assert "<p><strong>watch *this*\nline</strong></p>" in html
    assert '<li><a href="../run.json">run.json</a></li>' in html
    assert '<td>w_lat=1 | &lt;fp32&gt;</td><td class="num">1.0 ms</td>' in html
    assert '<img src="img/a.png" alt="a figure">' in html
