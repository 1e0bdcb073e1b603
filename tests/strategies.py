"""Hypothesis strategies shared by the tests: Markdown documents, blocks, and block outputs.

Documents are built from parts whose meaning is known (prose, blocks in containers), so that a
property can say what parsing them must find.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from mdrun.document.outputs import DataOutput, ErrorOutput, Output, StreamOutput
from mdrun.document.render import RegionBody
from mdrun.document.status import BlockStatus

NEWLINES = ("\n", "\r\n")

_PROSE_PIECES = (
    "word", "Ünïcödé", "emoji 🎉", " ", "  ", "\t", "*", "_", "`", "``", "~~", "#", "## ", "- ",
    "1. ", "> ", ">", "---", "===", "|", "| a | b |", "[link](x)", "[ref]: /url", "<", ">",
    "&amp;", "\\", "<div>", "</div>", "<span>", "<!--", "-->", "<!-- mdrun:end -->", "    ",
    "\x0c", "\u2028", "\x85", "\x00", "\ufeff", "end  ",
)  # fmt: skip
"""Text pieces for prose: CommonMark corner cases, odd Unicode line separators, HTML."""

_UNSAFE_BEFORE_BLOCKS = ("<!--", "<div>", "<span>", "\\", "    ", "\t", "[ref]: /url", ">")
"""Pieces that may open an HTML block or a paragraph that a block must not follow or join."""

_CODE_PIECES = (
    "x = 1", "print(x)", "  ", "    indented", "#", "'''", '"', "<!-- mdrun:end -->",
    "<!-- mdrun:output id=b1 -->", "> not a quote", "- not a list", "é", "{", "}", "=",
)  # fmt: skip

_OUTPUT_PIECES = (
    "text", " ", "\n", "\r\n", "\r", "\t", "`", "```", "````", "~~~", "<div>", "</div>",
    "<pre>", "<!--", "-->", "<!-- mdrun:end -->", "<!-- mdrun:output id=b9 -->", "\x1b[31m",
    "\x1b[0m", "*", "> ", "- ", "#", "    ", "é", "![x](y)", "|",
)  # fmt: skip


@dataclass(frozen=True)
class Container:
    """Where a block sits: the text before its opening fence, and before its other lines."""

    first: str
    continuation: str


CONTAINERS = (
    Container("", ""),
    Container("- ", "  "),
    Container("* ", "  "),
    Container("1. ", "   "),
    Container("10) ", "    "),
    Container("> ", "> "),
    Container("> - ", ">   "),
    Container("- > ", "  > "),
    Container("  ", "  "),
)


@dataclass(frozen=True)
class BlockSpec:
    """A block to write: its fence, info string, code lines and container."""

    fence: str
    info: str
    code_lines: tuple[str, ...]
    container: Container

    @property
    def code(self) -> str:
        """The content markdown-it must report for this block."""
        return "".join(line + "\n" for line in self.code_lines)

    def lines(self) -> list[str]:
        """The block's lines, without line endings."""
        inner = [f"{self.fence}{self.info}", *self.code_lines, self.fence]
        written = [self.container.first + inner[0]]
        for line in inner[1:]:
            written.append((self.container.continuation + line) if line else "")
        if self.container.continuation.strip():
            # In a block quote an empty line must keep its `>`, or the quote would end.
            written = [line if line else self.container.continuation.rstrip() for line in written]
        return written


@dataclass(frozen=True)
class DocumentSpec:
    """A generated document: its parts in order, and how its lines end."""

    parts: tuple[str | BlockSpec, ...]
    newline: str
    final_newline: bool
    tight: bool = False
    """Put the part after each block right after its closing fence, without an empty line."""

    @property
    def blocks(self) -> list[BlockSpec]:
        """The blocks, in document order."""
        return [part for part in self.parts if isinstance(part, BlockSpec)]

    def text(self) -> str:
        """The document's text; parts are separated by an empty line (not after blocks when
        `tight`: a paragraph cannot swallow a closed fence, but `10) ` cannot interrupt one)."""
        lines: list[str] = []
        for position, part in enumerate(self.parts):
            if position and not (self.tight and isinstance(self.parts[position - 1], BlockSpec)):
                lines.append("")
            lines.extend(part.lines() if isinstance(part, BlockSpec) else part.split("\n"))
        text = self.newline.join(lines)
        return text + self.newline if self.final_newline else text


def _joined(pieces: tuple[str, ...], max_size: int) -> st.SearchStrategy[str]:
    """Strings made of the given pieces."""
    return st.lists(st.sampled_from(pieces), max_size=max_size).map("".join)


def prose_lines(*, safe_before_blocks: bool = False) -> st.SearchStrategy[str]:
    """One line of Markdown-ish text that opens no code fence."""
    pieces: tuple[str, ...] = _PROSE_PIECES
    if safe_before_blocks:
        pieces = tuple(piece for piece in pieces if piece not in _UNSAFE_BEFORE_BLOCKS)
    return _joined(pieces, 8).filter(lambda line: "```" not in line and "~~~" not in line)


@st.composite
def documents_without_fences(draw: st.DrawFn) -> str:
    """Any text made of prose lines, with LF, CRLF, lone CR or mixed endings."""
    lines = draw(st.lists(prose_lines(), max_size=12))
    endings = draw(
        st.one_of(
            st.sampled_from(("\n", "\r\n", "\r")).map(lambda ending: [ending]),
            st.lists(st.sampled_from(("\n", "\r\n", "\r")), min_size=1, max_size=4),
        )
    )
    text = "".join(line + endings[number % len(endings)] for number, line in enumerate(lines))
    if draw(st.booleans()):
        text = text.removesuffix(endings[(len(lines) - 1) % len(endings)]) if lines else text
    return text


@st.composite
def block_specs(draw: st.DrawFn) -> BlockSpec:
    """A fenced block in some container, with code that never closes its fence."""
    return BlockSpec(
        fence=draw(st.sampled_from(("```", "````", "~~~"))),
        info=draw(
            st.sampled_from(
                ("python", "py id=x", "{.python timeout=3}", "", "text", 'python k="a b"')
            )
        ),
        code_lines=tuple(draw(st.lists(_joined(_CODE_PIECES, 4), max_size=4))),
        container=draw(st.sampled_from(CONTAINERS)),
    )


@st.composite
def documents_with_blocks(draw: st.DrawFn) -> DocumentSpec:
    """Prose paragraphs and blocks, separated by empty lines."""
    parts = draw(
        st.lists(
            st.one_of(
                st.lists(prose_lines(safe_before_blocks=True), min_size=1, max_size=3).map(
                    lambda lines: "\n".join(line.strip() or "text" for line in lines)
                ),
                block_specs(),
            ),
            max_size=8,
        )
    )
    return DocumentSpec(
        parts=tuple(parts),
        newline=draw(st.sampled_from(NEWLINES)),
        final_newline=draw(st.booleans()),
        tight=draw(st.booleans()),
    )


def output_texts() -> st.SearchStrategy[str]:
    """Output text with what could break a region: fences, markers, CRs, escape codes."""
    return _joined(_OUTPUT_PIECES, 10)


_PRINTED_PIECES = (
    "text", " ", "\n", ":::", "::: {.note}", "::::", "<script>window.injected = 1</script>",
    "<img src=x onerror=\"window.injected = 1\">", "</code></pre>", "</div>", "<div>", "```",
    "~~~", "`", "&lt;", "&amp;", "&", "<!-- mdrun:end -->", "<!--", "-->", "*", "_", "\\", "#",
    "> ", "- ", "$x$", "{{x}}", "[x](javascript:void(0))", "é", "🎉", "'", '"',
)  # fmt: skip


def printed_texts() -> st.SearchStrategy[str]:
    """What a block may print that could pass for markup: fences, div fences, HTML, entities."""
    return st.one_of(
        _joined(_PRINTED_PIECES, 12),
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
    ).filter(lambda text: text.strip() != "")


def outputs() -> st.SearchStrategy[Output]:
    """One nbformat output of any kind."""
    streams = st.builds(
        lambda name, text: StreamOutput(output_type="stream", name=name, text=text),
        st.sampled_from(("stdout", "stderr")),
        output_texts(),
    )
    data = st.builds(
        lambda mime, text: DataOutput(output_type="display_data", data={mime: text}, metadata={}),
        st.sampled_from(("text/plain", "text/markdown", "text/html")),
        output_texts(),
    )
    errors = st.builds(
        lambda ename, evalue, traceback: ErrorOutput(
            output_type="error", ename=ename, evalue=evalue, traceback=traceback
        ),
        st.sampled_from(("ValueError", "KeyError")),
        output_texts(),
        st.lists(output_texts(), max_size=3),
    )
    return st.one_of(streams, data, errors)


def region_bodies() -> st.SearchStrategy[RegionBody]:
    """What a region may show, including nothing."""
    statuses: tuple[BlockStatus, ...] = ("executed", "cached", "failed", "not-run")
    return st.builds(
        lambda found, status, note: RegionBody(outputs=tuple(found), status=status, note=note),
        st.lists(outputs(), max_size=4),
        st.sampled_from(statuses),
        output_texts(),
    )


_HTML_TEXT_LINES = ("", "  ", "\t", "text", "  indented", "a &amp; b", "x < y", "é 🎉", "1  2")
"""Lines of text inside HTML elements: blank and whitespace-only lines among them."""


@st.composite
def html_with_blank_lines(draw: st.DrawFn) -> str:
    """An HTML output like a pandas table's: a `<div>` holding `<style>`, `<pre>`, text,
    comments and scripts, with blank lines anywhere (the pre's lines are content)."""

    def lines(pieces: tuple[str, ...]) -> str:
        return "\n".join(draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=6)))

    parts = draw(
        st.lists(
            st.sampled_from(("style", "pre", "textarea", "p", "comment", "script", "table")),
            min_size=1,
            max_size=5,
        )
    )
    body = []
    for part in parts:
        if part == "style":
            css = lines(("", "  ", ".a { color: red; }", "  b {}"))
            body.append(f"<style scoped>\n{css}\n</style>")
        elif part == "script":
            body.append(f"<script>\n{lines(('', 'var x = 1;', '  f(x);'))}\n</script>")
        elif part == "comment":
            body.append(f"<!--\n{lines(('', ' note', '  '))}\n-->")
        elif part == "table":
            body.append(f"<table>\n{lines(('', '<tr><td>1</td></tr>', '  '))}\n</table>")
        else:
            body.append(f"<{part}>{lines(_HTML_TEXT_LINES)}</{part}>")
    separator = draw(st.sampled_from(("\n", "\n\n", "\n  \n")))
    return "<div>\n" + separator.join(body) + "\n</div>"
