"""Find a document's fenced code blocks and the output regions an earlier run wrote after them.

One markdown-it parse gives everything: its fence tokens are the blocks, the region rule's tokens
(`regions`) their regions, the front matter rule's token (`front_matter`) the front matter.
Parsing never rewrites anything: it records line spans so that `render.splice` can copy every
other byte through. Validating block options is `options`' job; writing regions is `render`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from mdrun.document.front_matter import FrontMatter, front_matter_plugin, read_front_matter
from mdrun.document.regions import (
    REGION_TOKEN,
    UNMATCHED_MARKERS,
    UNMATCHED_WARNING,
    Region,
    container_prefix,
    is_closed,
    regions_plugin,
)
from mdrun.errors import Location, ParseError

BYTE_ORDER_MARK = "\ufeff"
"""U+FEFF at the very start of a file: a UTF-8 byte-order mark, not part of the first line."""
UNCLOSED_WARNING = (
    "this code fence is never closed: it runs to the end of the document or of its container,"
    " and mdrun writes no output for it"
)

_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_PARSER = MarkdownIt("commonmark").use(front_matter_plugin).use(regions_plugin).disable("inline")
"""CommonMark's block rules with mdrun's two; inline content is left unparsed (mdrun needs only
blocks), so a heading's or paragraph's `inline` token has its text but no children."""


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced code block of the document (blocks inside output regions are not blocks)."""

    index: int
    """0-based position among the document's blocks; the default id is `b{index + 1}`."""
    info: str
    """The info string, raw, as markdown-it gives it (`python id=load timeout=10`)."""
    language: str
    """The first word of the info string, lowercased (`python` for `{.python}`); "" if none."""
    raw_options: tuple[tuple[str, str], ...]
    """The `key=value` words after the language, in order, quotes removed; not yet validated."""
    options_problem: str | None
    """Why the info string could not be read as options (a bare word...), else None."""
    code: str
    """The content as markdown-it gives it (`\\n` line endings, container prefix removed)."""
    start_line: int
    """0-based line of the opening fence."""
    end_line: int
    """0-based exclusive end of the fence: the line after the closing fence."""
    closed: bool
    """False when the fence is never closed and runs to the end of the document or container."""
    prefix: str
    """What each output line must start with to stay in the block's container (`"> "`, `"   "`)."""
    region: Region | None
    """The output region written right after this block by an earlier run, if any."""

    @property
    def line_number(self) -> int:
        """The 1-based line of the opening fence, for messages."""
        return self.start_line + 1


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed Markdown document: its exact text, and where its blocks and regions are."""

    source: str
    """The text exactly as read; every byte outside regions is copied from here."""
    lines: tuple[str, ...]
    """The lines of `source` with their endings (split as CommonMark does: LF, CRLF or CR),
    after its byte-order mark if it has one."""
    blocks: tuple[Block, ...]
    """The fenced code blocks, in document order."""
    front_matter: FrontMatter
    """The leading YAML block: its data, where it ends, and why it is not YAML if it is not."""
    newline: str
    """The dominant line ending, `\\n` or `\\r\\n`, used for lines mdrun writes."""
    path: str
    """The file as the user named it, for messages."""
    warnings: tuple[str, ...]
    """Problems that do not stop a run, each formatted `path:line: message`."""
    byte_order_mark: str = ""
    """`BYTE_ORDER_MARK` if `source` starts with one (written back before the lines), else ""."""
    tokens: tuple[Token, ...] = ()
    """markdown-it's block tokens of `lines` (the one parse; not to be modified), for readers
    that need more than blocks, such as the first heading."""


def read_document(path: Path) -> Document:
    """Read and parse a file, refusing anything that is not UTF-8 with the first bad line."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ParseError(f"cannot read the document: {err.strerror}", Location(str(path))) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = len(re.findall(rb"\r\n|\r|\n", data[: err.start])) + 1
        raise ParseError(
            f"not UTF-8 (byte 0x{data[err.start]:02x}); mdrun reads UTF-8 documents only",
            Location(str(path), line),
        ) from err
    return parse_document(text, str(path))


def parse_document(text: str, path: str = "<stdin>") -> Document:
    """Parse a document's text; never fails: oddities become `Document.warnings`.

    A leading byte-order mark is set apart, so that it does not hide a fence on the first line.
    """
    byte_order_mark = BYTE_ORDER_MARK if text.startswith(BYTE_ORDER_MARK) else ""
    body = text[len(byte_order_mark) :]
    lines = split_lines(body)
    environment: dict[str, list[int]] = {}
    tokens = _PARSER.parse(body, environment)
    blocks = _blocks(tokens, lines)
    warnings = [(line, UNMATCHED_WARNING) for line in environment.get(UNMATCHED_MARKERS, [])]
    warnings.extend((block.start_line, UNCLOSED_WARNING) for block in blocks if not block.closed)
    return Document(
        source=text,
        lines=tuple(lines),
        blocks=tuple(blocks),
        front_matter=read_front_matter(tokens, path),
        newline=_dominant_newline(lines, (block.region for block in blocks if block.region)),
        path=path,
        warnings=tuple(f"{path}:{line + 1}: {message}" for line, message in sorted(warnings)),
        byte_order_mark=byte_order_mark,
        tokens=tuple(tokens),
    )


def split_lines(text: str) -> list[str]:
    """Split like CommonMark (LF, CRLF, lone CR), keeping endings; `str.splitlines` would also
    split on form feeds and U+2028, which markdown-it treats as ordinary characters."""
    return _LINE_RE.findall(text)


def line_ending(line: str) -> str:
    """The ending of one line from `split_lines` ("" for a last line without one)."""
    if line.endswith("\r\n"):
        return "\r\n"
    if line.endswith(("\n", "\r")):
        return line[-1]
    return ""


def _blocks(tokens: Sequence[Token], lines: Sequence[str]) -> list[Block]:
    """A block for each fence token, with the region token right after it, if any."""
    blocks: list[Block] = []
    for position, token in enumerate(tokens):
        if token.type != "fence":
            continue
        following = tokens[position + 1] if position + 1 < len(tokens) else None
        region = None
        if following is not None and following.type == REGION_TOKEN:
            region = Region.from_token(following)
        blocks.append(_make_block(len(blocks), token, lines, region))
    return blocks


def _make_block(index: int, fence: Token, lines: Sequence[str], region: Region | None) -> Block:
    """Build a `Block` from a fence token and the region found after it."""
    assert fence.map is not None, "markdown-it maps every block token"
    language, options, problem = split_info(fence.info)
    return Block(
        index=index,
        info=fence.info,
        language=language,
        raw_options=options,
        options_problem=problem,
        code=fence.content,
        start_line=fence.map[0],
        end_line=fence.map[1],
        closed=is_closed(fence),
        prefix=container_prefix(lines[fence.map[0]], fence.markup),
        region=region,
    )


def split_info(info: str) -> tuple[str, tuple[tuple[str, str], ...], str | None]:
    """Split an info string into language, `key=value` options and a problem (or None).

    Accepts `python key=value key="a b"` and pandoc's `{.python #id key=value}` (also
    `{python, key=value}`); `#id` becomes the option `id`.
    """
    text = info.strip()
    braced = text.startswith("{") and text.endswith("}")
    if braced:
        text = text[1:-1].replace(",", " ")
    words, problem = _split_words(text)
    if not words:
        return "", (), problem
    language = words[0].lower()
    if braced:
        language = language.removeprefix(".")
    options: list[tuple[str, str]] = []
    for word in words[1:]:
        if braced and word.startswith("#") and len(word) > 1:
            options.append(("id", word[1:]))
        elif "=" in word[1:]:
            key, _, value = word.partition("=")
            options.append((key, _unquote(value)))
        elif problem is None:
            problem = f"`{word}` is not an option: write options as key=value"
    return language, tuple(options), problem


_WORD_RE = re.compile(r"""(?:[^\s"']+|"(?:[^"\\]|\\.)*"|'[^']*')+""")


def _split_words(text: str) -> tuple[list[str], str | None]:
    """Split on blanks outside quotes; an unbalanced quote is a problem."""
    words = _WORD_RE.findall(text)
    rest = _WORD_RE.sub("", text).strip()
    problem = f"unbalanced quote in `{text}`" if rest else None
    return words, problem


def _unquote(value: str) -> str:
    """Remove one level of quotes from a value (`"a b"` → `a b`, `\\"` → `"`)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    return value


def _dominant_newline(lines: Sequence[str], regions: Iterable[Region]) -> str:
    """`\\r\\n` when most line endings outside regions are CRLF, else `\\n`.

    Regions do not vote: mdrun writes them, and letting them vote could flip the choice
    between two runs, so that re-rendering the same outputs would change bytes.
    """
    inside = {number for region in regions for number in range(region.start_line, region.end_line)}
    endings = [line_ending(line) for number, line in enumerate(lines) if number not in inside]
    crlf = endings.count("\r\n")
    return "\r\n" if crlf > endings.count("\n") else "\n"
