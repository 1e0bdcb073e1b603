"""Keep an HTML output one Markdown HTML block: no blank line inside, nothing shown changed.

A blank line ends a CommonMark HTML block, so an output such as a pandas table (whose
`<style scoped>` holds blank lines) would otherwise turn into HTML, then CSS shown as text. Each
blank line is removed where that changes nothing shown (inside tags, comments, `<script>` and
`<style>`), and elsewhere, in text, where a newline may be content (`<pre>`, `<textarea>`), its
line break becomes the character reference `&#10;` joined to the next line: the same text once
the browser decodes it. Splitting the output into lines and deciding what it shows are the
renderer's job.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

LINE_FEED = "&#10;"
"""A line feed written as a character reference: decoded in text, never a blank line."""

_RAW_TEXT_ELEMENTS = frozenset({"script", "style"})
_BLANK_LINE_RE = re.compile(r"(?<=\n)[ \t]*\n")


class _TextRanges(HTMLParser):
    """Records where text data lies (outside `<script>` and `<style>`), as offsets."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", text)]
        self.ranges: list[tuple[int, int]] = []
        self.raw_text_depth = 0

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        del attrs
        if tag in _RAW_TEXT_ELEMENTS:
            self.raw_text_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _RAW_TEXT_ELEMENTS and self.raw_text_depth:
            self.raw_text_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.raw_text_depth:
            start = self._offset()
            self.ranges.append((start, start + len(data)))


def text_ranges(text: str) -> list[tuple[int, int]]:
    """Where the HTML's text data lies ([start, end) offsets), in order."""
    parser = _TextRanges(text)
    parser.feed(text)
    parser.close()
    return parser.ranges


def without_blank_lines(html: str) -> str:
    """`html` (with `\\n` line endings) with no blank line inside, showing the same."""
    if not _BLANK_LINE_RE.search(html):
        return html
    ranges = text_ranges(html)

    def in_text(position: int) -> bool:
        return any(start <= position < end for start, end in ranges)

    def replace(match: re.Match[str]) -> str:
        blank = match.group()
        if in_text(match.end() - 1):
            return blank[:-1] + LINE_FEED
        return ""

    return _BLANK_LINE_RE.sub(replace, html)
