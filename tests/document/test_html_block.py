"""HTML outputs stay one Markdown HTML block (no blank line inside) and show the same text."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pypandoc
from hypothesis import given, settings
from markdown_it import MarkdownIt

from mdrun.document.html_block import without_blank_lines
from mdrun.document.outputs import DataOutput
from mdrun.document.render import RegionBody, render_region
from tests.strategies import html_with_blank_lines

PANDAS_TABLE = """\
<div>
<style scoped>
    .dataframe tbody tr th:only-of-type {
        vertical-align: middle;
    }

    .dataframe tbody tr th {
        vertical-align: top;
    }

    .dataframe thead th {
        text-align: right;
    }
</style>
<table border="1" class="dataframe">
  <thead>
    <tr style="text-align: right;">
      <th></th>
      <th>a</th>
    </tr>
  </thead>
  <tbody>
    <tr>
      <th>0</th>
      <td>1</td>
    </tr>
  </tbody>
</table>
</div>"""
"""What `pandas.DataFrame({'a': [1]})._repr_html_()` gives (pandas 2)."""


class _Shown(HTMLParser):
    """What a browser takes from HTML: tags, and text with references decoded (the text of
    `<script>`/`<style>` without its blank lines, which mean nothing there)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, str]] = []
        self.raw = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.raw += tag in ("script", "style")
        self.events.append(("start", tag))

    def handle_endtag(self, tag: str) -> None:
        self.raw -= tag in ("script", "style")
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        if self.raw:
            data = "\n".join(line for line in data.split("\n") if line.strip())
        if self.events and self.events[-1][0] == "data":
            data = self.events.pop()[1] + data
        self.events.append(("data", data))


def shown(html: str) -> list[tuple[str, str]]:
    parser = _Shown()
    parser.feed(html)
    parser.close()
    return parser.events


def region_markdown(html: str) -> str:
    output = DataOutput(output_type="display_data", data={"text/html": html}, metadata={})
    return "\n".join(render_region("b1", RegionBody(outputs=(output,)), scripts=True)) + "\n"


def html_blocks_by_markdown_it(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").parse(markdown)
    assert {token.type for token in tokens} == {"html_block"}, [t.type for t in tokens]
    return [token.content for token in tokens]


def pandoc_blocks(markdown: str) -> list[str]:
    ast = json.loads(pypandoc.convert_text(markdown, "json", format="gfm"))
    return [block["t"] for block in ast["blocks"]]


def test_a_pandas_table_stays_one_html_block() -> None:
    markdown = region_markdown(PANDAS_TABLE)
    # The start marker, the table (its CSS included), the end marker: nothing shown as text.
    blocks = html_blocks_by_markdown_it(markdown)
    assert len(blocks) == 3
    assert "vertical-align: top" in blocks[1] and "</table>" in blocks[1]
    assert set(pandoc_blocks(markdown)) == {"RawBlock"}
    assert shown(without_blank_lines(PANDAS_TABLE)) == shown(PANDAS_TABLE)


@given(html_with_blank_lines())
@settings(max_examples=200, deadline=None)
def test_html_with_blank_lines_becomes_one_block_showing_the_same(html: str) -> None:
    changed = without_blank_lines(html)
    assert shown(changed) == shown(html)
    assert len(html_blocks_by_markdown_it(region_markdown(html))) == 3


@given(html_with_blank_lines())
@settings(max_examples=25, deadline=None)
def test_pandoc_reads_html_with_blank_lines_as_raw_html_only(html: str) -> None:
    assert set(pandoc_blocks(region_markdown(html))) == {"RawBlock"}


def test_blank_lines_inside_pre_keep_their_line_breaks() -> None:
    html = "<div>\n<pre>first\n\n  \nlast</pre>\n</div>"
    changed = without_blank_lines(html)
    assert "\n\n" not in changed and "\n  \n" not in changed
    assert shown(changed) == [
        ("start", "div"), ("data", "\n"), ("start", "pre"), ("data", "first\n\n  \nlast"),
        ("end", "pre"), ("data", "\n"), ("end", "div"),
    ]  # fmt: skip
