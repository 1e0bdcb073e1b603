"""The output region: its markers, and the markdown-it block rule that finds it after a fence.

A region is one token of the parse (`mdrun_region`, with its line `map`), so its contents are
never read as Markdown and the document is parsed once. Writing regions is `render`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.token import Token

START_MARKER = "<!-- mdrun:output id={block_id} -->"
"""The first line of an output region (after the block's container prefix)."""
END_MARKER = "<!-- mdrun:end -->"
"""The last line of an output region."""
MARKER_LEAD = "<!-- mdrun:"
"""What both markers start with; `render` escapes output lines that start with it."""
REGION_TOKEN = "mdrun_region"
"""The type of the token the rule makes; its `meta["block_id"]` is the id in the start marker."""
UNMATCHED_MARKERS = "mdrun_unmatched_markers"
"""The parse's `env` key listing the 0-based lines of start markers that have no end marker."""
UNMATCHED_WARNING = f"output marker without a matching `{END_MARKER}`; left as ordinary text"

_START_RE = re.compile(r"<!-- mdrun:output id=(?P<id>[^\s>]+) -->[ \t]*")
_END_RE = re.compile(re.escape(END_MARKER) + r"[ \t]*")


@dataclass(frozen=True, slots=True)
class Region:
    """An output region: the lines from its start marker to its end marker, both included."""

    start_line: int
    """0-based line of `<!-- mdrun:output id=... -->`."""
    end_line: int
    """0-based line just after `<!-- mdrun:end -->` (exclusive end)."""
    block_id: str
    """The id written in the start marker: the block that the region was rendered for."""

    @classmethod
    def from_token(cls, token: Token) -> Region:
        """The region that a `mdrun_region` token marks."""
        assert token.type == REGION_TOKEN and token.map is not None, "a region token"
        return cls(token.map[0], token.map[1], str(token.meta["block_id"]))


def regions_plugin(md: MarkdownIt) -> None:
    """Add the region rule to `md`'s block rules, first, so that no other rule reads a region."""
    md.block.ruler.before("table", "mdrun_region", _region_rule)


def _region_rule(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """Take the lines from a start marker right after a closed fence to its end marker.

    Both markers must be written exactly after the fence's container prefix (what render writes).
    The end is searched for within the fence's container; a start marker with the same prefix
    stops the search. A start marker without an end is left to the other rules and noted in
    `env[UNMATCHED_MARKERS]`.
    """
    fence = state.tokens[-1] if state.tokens else None
    if fence is None or fence.type != "fence" or fence.map is None:
        return False
    if fence.map[1] != start_line or not is_closed(fence):
        return False
    prefix = container_prefix(_source_line(state, fence.map[0]), fence.markup)
    opening = _marker_match(_START_RE, _source_line(state, start_line), prefix)
    if opening is None:
        return False
    end = _end_marker_line(state, start_line + 1, end_line, prefix)
    if end is None:
        unmatched = state.env.setdefault(UNMATCHED_MARKERS, [])
        if start_line not in unmatched:
            unmatched.append(start_line)
        return False
    if silent:
        return True
    token = state.push(REGION_TOKEN, "", 0)
    token.map = [start_line, end + 1]
    token.meta = {"block_id": opening.group("id")}
    token.block = True
    state.line = end + 1
    return True


def _end_marker_line(state: StateBlock, first: int, end_line: int, prefix: str) -> int | None:
    """The line of the end marker from `first` on, or None (another start marker comes first)."""
    for number in range(first, end_line):
        line = _source_line(state, number)
        if _marker_match(_END_RE, line, prefix) is not None:
            return number
        if _marker_match(_START_RE, line, prefix) is not None:
            return None
    return None


def _source_line(state: StateBlock, number: int) -> str:
    """A line as written, container markers included: a container moves `bMarks` past its
    markers while it parses its content, but every line still starts after the previous one."""
    start = state.eMarks[number - 1] + 1 if number > 0 else 0
    return state.src[start : state.eMarks[number]]


def _marker_match(pattern: re.Pattern[str], line: str, prefix: str) -> re.Match[str] | None:
    """Match a marker written exactly after the container prefix (trailing blanks allowed)."""
    if not line.startswith(prefix):
        return None
    return pattern.fullmatch(line, len(prefix))


def is_closed(fence: Token) -> bool:
    """A closed fence spans its opening line, one line per content line, and a closing line."""
    assert fence.map is not None, "markdown-it maps every block token"
    return fence.map[1] - fence.map[0] == fence.content.count("\n") + 2


def container_prefix(opening_line: str, markup: str) -> str:
    """What precedes the fence on its opening line, with list markers turned into spaces.

    Block quote markers and whitespace (tabs included, so tab stops stay put) are kept: a line
    starting with this prefix continues the same containers.
    """
    before = opening_line[: opening_line.index(markup)]
    return "".join(char if char in " \t>" else " " for char in before)
