"""A document's front matter: where it is (mdit-py-plugins' rule, held to pandoc's conditions)
and what it says (PyYAML's safe loader: plain data only, never an object).

What the keys mean is the options' and the format readers' business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.parser_block import RuleFuncBlockType
from markdown_it.rules_block import StateBlock
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin as delimiting_plugin

from mdrun.errors import Location, ParseError

FRONT_MATTER_TOKEN = "front_matter"
"""The type of the token mdit-py-plugins' rule makes (its content is the YAML text)."""
MDRUN_KEY_LEAD = "mdrun"
"""Front matter lines starting with this set mdrun's keys: then YAML that does not parse is an
error, not another tool's business."""

_KEY_LINE_RE = re.compile(r"[A-Za-z_][\w.-]*[ \t]*:(?:[ \t].*)?")


@dataclass(frozen=True, slots=True)
class FrontMatter:
    """A leading YAML block between `---` and `---` (or `...`), read once when parsing."""

    text: str = ""
    """The YAML between the marker lines, `\\n` line endings ("" without front matter)."""
    end_line: int = 0
    """0-based line after the closing marker; 0 when the document has no front matter."""
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The top-level mapping; empty when there is none, or when it is not YAML or not a map."""
    problem: ParseError | None = None
    """Why `text` is not YAML, at the line where PyYAML stopped; None when it is."""

    def checked_data(self) -> Mapping[str, Any]:
        """`data`, or `problem` raised when the text that is not YAML sets mdrun's keys."""
        if self.problem is not None and self.sets_mdrun_keys():
            raise ParseError(self.problem.message, self.problem.location)
        return self.data

    def sets_mdrun_keys(self) -> bool:
        """Whether a line of it starts with `mdrun` (`mdrun.timeout: 10`)."""
        return any(line.startswith(MDRUN_KEY_LEAD) for line in self.text.splitlines())

    def line_of(self, key: str) -> int | None:
        """The 1-based document line where a top-level `key:` is written, for messages."""
        for number, line in enumerate(self.text.splitlines()):
            if line.startswith(key) and line[len(key) :].lstrip(" \t").startswith(":"):
                return number + 2
        return None


def front_matter_plugin(md: MarkdownIt) -> None:
    """mdit-py-plugins' front matter rule, tried only where pandoc would read a metadata block.

    pandoc's conditions keep a document that opens with a thematic break from losing its first
    lines: the opening `---` is the whole first line and is not followed by a blank line, and
    every line up to the closing `---` or `...` looks like YAML (`key: value`, indented, `- item`,
    `# comment`). Where the block ends is the plugin's decision, never past that closing line
    (it may end earlier: the plugin, as MyST, also closes on a `---` indented by up to three
    spaces, which pandoc would read as YAML).
    """
    md.use(delimiting_plugin)
    delimit = _rule_named(md, FRONT_MATTER_TOKEN)

    def pandoc_front_matter(state: StateBlock, start: int, end: int, silent: bool) -> bool:
        closing = _closing_line(state, end) if start == 0 else None
        return closing is not None and delimit(state, start, closing + 1, silent)

    # No `alt`: as a terminator (a line after a paragraph's first) it could never match line 0.
    md.block.ruler.at(FRONT_MATTER_TOKEN, pandoc_front_matter)


def _rule_named(md: MarkdownIt, name: str) -> RuleFuncBlockType:
    """The function of an active block rule, found through the ruler's public lists."""
    rules = dict(zip(md.block.ruler.get_active_rules(), md.block.ruler.getRules(""), strict=True))
    return rules[name]


def _closing_line(state: StateBlock, end_line: int) -> int | None:
    """The line closing a pandoc metadata block that opens the document, or None if it has none."""
    if end_line < 2 or _line(state, 0).rstrip() != "---" or not _line(state, 1).strip():
        return None
    for number in range(1, end_line):
        line = _line(state, number).rstrip()
        if line in ("---", "..."):
            return number
        if not (_KEY_LINE_RE.fullmatch(line) or _is_other_yaml_line(line)):
            return None
    return None


def _line(state: StateBlock, number: int) -> str:
    return state.src[state.bMarks[number] : state.eMarks[number]]


def _is_other_yaml_line(line: str) -> bool:
    """A blank, indented, list item or comment line: YAML that is not a `key:` line."""
    return not line or line[0] in " \t#" or line == "-" or line.startswith("- ")


def read_front_matter(tokens: list[Token], path: str) -> FrontMatter:
    """The front matter that a parse found (its first token), its YAML loaded."""
    if not tokens or tokens[0].type != FRONT_MATTER_TOKEN or tokens[0].map is None:
        return FrontMatter()
    text = tokens[0].content + "\n" if tokens[0].content else ""
    end_line = tokens[0].map[1]
    try:
        data = load_yaml(text, Location(path, 2))
    except ParseError as err:
        return FrontMatter(text, end_line, problem=err)
    if not isinstance(data, dict):
        return FrontMatter(text, end_line)
    mapping = {str(key): value for key, value in data.items()}
    return FrontMatter(text, end_line, MappingProxyType(mapping))


def load_yaml(text: str, start: Location) -> Any:
    """YAML text as plain data (PyYAML's `safe_load`); a `ParseError` at the line where it is
    not YAML, counting from `start` (the line of the text's first line, if known)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = start.line
        if mark is not None:
            line = (start.line or 1) + mark.line
        problem = getattr(err, "problem", None) or str(err)
        raise ParseError(f"not valid YAML: {problem}", Location(start.path, line)) from None
