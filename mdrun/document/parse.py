"""Find a document's fenced code blocks and the output regions an earlier run wrote after them.

Parsing never rewrites anything: it records line spans so that `render.splice` can copy every
other byte through. Validating block options is `options`' job; writing regions is `render`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from markdown_it import MarkdownIt
from markdown_it.token import Token

from mdrun.errors import Location, ParseError

START_MARKER = "<!-- mdrun:output id={block_id} -->"
"""The first line of an output region (after the block's container prefix)."""
END_MARKER = "<!-- mdrun:end -->"
"""The last line of an output region."""
MARKER_LEAD = "<!-- mdrun:"
"""What both markers start with; `render` escapes output lines that start with it."""
BYTE_ORDER_MARK = "\ufeff"
"""U+FEFF at the very start of a file: a UTF-8 byte-order mark, not part of the first line."""

_START_RE = re.compile(r"<!-- mdrun:output id=(?P<id>[^\s>]+) -->[ \t]*")
_END_RE = re.compile(re.escape(END_MARKER) + r"[ \t]*")
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_FRONT_MATTER_KEY_RE = re.compile(r"(?P<key>[A-Za-z_][\w.-]*)[ \t]*:(?:[ \t]+(?P<value>.*))?")
_MAX_MASKING_ROUNDS = 4
_MARKDOWN = MarkdownIt("commonmark")
UNCLOSED_WARNING = (
    "this code fence is never closed: it runs to the end of the document or of its container,"
    " and mdrun writes no output for it"
)


@dataclass(frozen=True, slots=True)
class Region:
    """An output region: the lines from its start marker to its end marker, both included."""

    start_line: int
    """0-based line of `<!-- mdrun:output id=... -->`."""
    end_line: int
    """0-based line just after `<!-- mdrun:end -->` (exclusive end)."""
    block_id: str
    """The id written in the start marker: the block that the region was rendered for."""


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
    front_matter: Mapping[str, str]
    """Simple `key: value` lines of a leading `---` block, values as strings; else empty."""
    newline: str
    """The dominant line ending, `\\n` or `\\r\\n`, used for lines mdrun writes."""
    path: str
    """The file as the user named it, for messages."""
    warnings: tuple[str, ...]
    """Problems that do not stop a run, each formatted `path:line: message`."""
    byte_order_mark: str = ""
    """`BYTE_ORDER_MARK` if `source` starts with one (written back before the lines), else ""."""


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
    lines = split_lines(text[len(byte_order_mark) :])
    front_matter, front_matter_end = _read_front_matter(lines)
    hidden = [range(0, front_matter_end)] if front_matter_end else []
    fences, regions, region_warnings = _find_fences_and_regions(lines, hidden)
    blocks: list[Block] = []
    warnings = list(region_warnings)
    for fence in fences:
        block = _make_block(len(blocks), fence, lines, regions.get(fence.map_start))
        if not block.closed:
            warnings.append((block.start_line, UNCLOSED_WARNING))
        blocks.append(block)
    return Document(
        source=text,
        lines=tuple(lines),
        blocks=tuple(blocks),
        front_matter=MappingProxyType(front_matter),
        newline=_dominant_newline(lines, regions.values()),
        path=path,
        warnings=tuple(f"{path}:{line + 1}: {message}" for line, message in sorted(warnings)),
        byte_order_mark=byte_order_mark,
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


@dataclass(frozen=True, slots=True)
class _Fence:
    """The parts of a markdown-it fence token that mdrun uses."""

    map_start: int
    map_end: int
    info: str
    content: str
    markup: str


def _find_fences_and_regions(
    lines: Sequence[str], hidden: list[range]
) -> tuple[list[_Fence], dict[int, Region], list[tuple[int, str]]]:
    """Fences outside regions, regions by their block's start line, and warnings.

    A region's content (raw HTML, Markdown) may change how the lines after it parse, so the
    regions are blanked out and the document parsed again until the regions found are the ones
    blanked; if that does not settle, regions are confirmed one at a time, in document order.
    """
    candidates = _textual_regions(lines)
    if candidates:
        # Usually every marker pair is a region mdrun wrote: blank them all and parse once.
        fences, found, warnings = _scan(lines, [*hidden, *candidates], {})
        spans = sorted((region.start_line, region.end_line) for region in found.values())
        if spans == [(span.start, span.stop) for span in candidates]:
            return fences, found, warnings
    regions: dict[int, Region] = {}
    for _ in range(_MAX_MASKING_ROUNDS):
        fences, found, warnings = _scan(lines, hidden, regions)
        if found == regions:
            return fences, found, warnings
        regions = found
    regions = {}
    while True:
        fences, found, warnings = _scan(lines, hidden, regions)
        new = [start for start in found if start not in regions]
        if not new:
            return fences, regions, warnings
        first = min(new)
        regions[first] = found[first]


_ANY_START = re.compile(r"([ \t>]*)<!-- mdrun:output id=\S+ -->[ \t]*")


def _textual_regions(lines: Sequence[str]) -> list[range]:
    """Spans from each start marker to the next end marker with the same prefix, found in the
    text alone: the guess that lets a document with regions be parsed once, not twice."""
    spans: list[range] = []
    number = 0
    while number < len(lines):
        match = _ANY_START.fullmatch(lines[number].rstrip("\r\n"))
        if match is not None:
            prefix = match.group(1)
            for end in range(number + 1, len(lines)):
                if _marker_match(_START_RE, lines[end], prefix) is not None:
                    break
                if _marker_match(_END_RE, lines[end], prefix) is not None:
                    spans.append(range(number, end + 1))
                    number = end
                    break
        number += 1
    return spans


def _scan(
    lines: Sequence[str], hidden: list[range], regions: Mapping[int, Region]
) -> tuple[list[_Fence], dict[int, Region], list[tuple[int, str]]]:
    """Parse with front matter and the given regions blanked; report fences and regions seen."""
    masked = list(lines)
    blanked = [*hidden, *(range(r.start_line, r.end_line) for r in regions.values())]
    for span in blanked:
        for number in span:
            # An empty line keeps the line count; a blank ends no block that matters here.
            masked[number] = "\n" if line_ending(lines[number]) else ""
    fences: list[_Fence] = []
    found: dict[int, Region] = {}
    warnings: list[tuple[int, str]] = []
    for token in _fence_tokens(_MARKDOWN.parse("".join(masked))):
        assert token.map is not None, "markdown-it maps every block token"
        fence = _Fence(token.map[0], token.map[1], token.info, token.content, token.markup)
        fences.append(fence)
        if not _is_closed(fence):
            continue
        prefix = _container_prefix(lines[fence.map_start], fence.markup)
        region, problem = _region_after(lines, fence.map_end, prefix)
        if region is not None:
            found[fence.map_start] = region
        elif problem is not None:
            warnings.append((fence.map_end, problem))
    return fences, found, warnings


def _fence_tokens(tokens: Sequence[Token]) -> Iterator[Token]:
    """Fence tokens at any depth: markdown-it's block stream is flat (nesting is `level`), so
    fences in list items and block quotes are in it too; indented code is `code_block`."""
    return (token for token in tokens if token.type == "fence")


def _region_after(
    lines: Sequence[str], start: int, prefix: str
) -> tuple[Region | None, str | None]:
    """The region whose start marker is line `start`, or why there is none (None if no marker)."""
    if start >= len(lines):
        return None, None
    opening = _marker_match(_START_RE, lines[start], prefix)
    if opening is None:
        return None, None
    for number in range(start + 1, len(lines)):
        if _marker_match(_END_RE, lines[number], prefix) is not None:
            return Region(start, number + 1, opening.group("id")), None
        if _marker_match(_START_RE, lines[number], prefix) is not None:
            break
    return None, f"output marker without a matching `{END_MARKER}`; left as ordinary text"


def _marker_match(pattern: re.Pattern[str], line: str, prefix: str) -> re.Match[str] | None:
    """Match a marker written exactly after the container prefix (trailing blanks allowed)."""
    if not line.startswith(prefix):
        return None
    return pattern.fullmatch(line[len(prefix) :].rstrip("\r\n"))


def _is_closed(fence: _Fence) -> bool:
    """A closed fence spans its opening line, one line per content line, and a closing line."""
    return fence.map_end - fence.map_start == fence.content.count("\n") + 2


def _container_prefix(opening_line: str, markup: str) -> str:
    """What precedes the fence on its opening line, with list markers turned into spaces.

    Block quote markers and whitespace (tabs included, so tab stops stay put) are kept: a line
    starting with this prefix continues the same containers.
    """
    before = opening_line[: opening_line.index(markup)]
    return "".join(char if char in " \t>" else " " for char in before)


def _make_block(index: int, fence: _Fence, lines: Sequence[str], region: Region | None) -> Block:
    """Build a `Block` from a fence token and the region found after it."""
    language, options, problem = split_info(fence.info)
    return Block(
        index=index,
        info=fence.info,
        language=language,
        raw_options=options,
        options_problem=problem,
        code=fence.content,
        start_line=fence.map_start,
        end_line=fence.map_end,
        closed=_is_closed(fence),
        prefix=_container_prefix(lines[fence.map_start], fence.markup),
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


def front_matter_end(lines: Sequence[str]) -> int:
    """The line after the document's front matter (0 if none), as the parser sees it."""
    return _read_front_matter(lines)[1]


def _read_front_matter(lines: Sequence[str]) -> tuple[dict[str, str], int]:
    """The `key: value` pairs of a leading `---` block and the line after it (0 if none).

    As in pandoc, the opening `---` is not followed by a blank line; and every line inside must
    look like YAML (`key: value`, indented, `- item`, `# comment`), so that a document opening
    with a thematic break is not mistaken for front matter. Only flat `key: value` lines are read
    (values unquoted, kept as strings), so mdrun needs no YAML library.
    """
    if len(lines) < 2 or lines[0].removeprefix("\ufeff").rstrip() != "---":
        return {}, 0
    if not lines[1].strip():
        return {}, 0
    values: dict[str, str] = {}
    for number in range(1, len(lines)):
        line = lines[number].rstrip()
        if line in ("---", "..."):
            return values, number + 1
        match = _FRONT_MATTER_KEY_RE.fullmatch(line)
        if match is not None:
            values[match.group("key")] = _unquote((match.group("value") or "").strip())
        elif not _is_other_yaml_line(line):
            return {}, 0
    return {}, 0


def _is_other_yaml_line(line: str) -> bool:
    """A blank, indented, list item or comment line: YAML that mdrun reads past."""
    return not line or line[0] in " \t#" or line == "-" or line.startswith("- ")


def _dominant_newline(lines: Sequence[str], regions: Iterable[Region]) -> str:
    """`\\r\\n` when most line endings outside regions are CRLF, else `\\n`.

    Regions do not vote: mdrun writes them, and letting them vote could flip the choice
    between two runs, so that re-rendering the same outputs would change bytes.
    """
    inside = {number for region in regions for number in range(region.start_line, region.end_line)}
    endings = [line_ending(line) for number, line in enumerate(lines) if number not in inside]
    crlf = endings.count("\r\n")
    return "\r\n" if crlf > endings.count("\n") else "\n"
