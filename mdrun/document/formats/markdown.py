"""Plain Markdown: Python fences run; other languages only when the author opts them in.

Options are `key=value` words after the language (or pandoc's `{.python #id key=value}`).
Attributes that MkDocs, Material and pandoc use for display (`title=`, `hl_lines=`,
`linenums=`, extra `.class` words) are accepted and ignored on a block that runs. A block that
does not run is text: its info string is never read.
"""

from __future__ import annotations

import re
from collections.abc import Set

from mdrun.document.formats.cell import Cell
from mdrun.document.parse import Block, split_info

PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "ipython"})
"""The languages that run in plain Markdown without being asked for."""

DISPLAY_ATTRIBUTES = frozenset({"title", "hl_lines", "linenums", "startfrom"})
"""Info-string attributes of MkDocs/Material and pandoc that only change how code is shown."""

QUARTO_RENDERED_CLASS = "cell-code"
"""The class Quarto gives code it already ran and rendered: display code, never run again."""

_CLASS_WORD = re.compile(r"(?<=\s)\.[A-Za-z][\w-]*")


def read_markdown(block: Block, languages: Set[str]) -> Cell | None:
    """The block as a cell, or None when it is text (see the module docstring)."""
    info = block.info.strip()
    braced = info.startswith("{") and info.endswith("}")
    classes: list[str] = []
    if braced:
        classes = [word[1:] for word in _CLASS_WORD.findall(info[1:-1].replace(",", " "))]
        if QUARTO_RENDERED_CLASS in classes:
            return None
        info = "{" + _CLASS_WORD.sub(" ", info[1:-1]) + "}"
    language, options, problem = split_info(info)
    asks_for_kernel = any(key == "kernel" for key, _ in options)
    if not (language in PYTHON_LANGUAGES or language in languages or asks_for_kernel):
        return None
    if language in PYTHON_LANGUAGES and is_session_transcript(block.code):
        return None  # a `>>>` session: text, or a doctest block in doctest mode
    kept: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, value in options:
        name = key.replace("-", "_")
        if name.lower() in DISPLAY_ATTRIBUTES:
            continue
        if name in seen and problem is None:
            problem = f"option `{key}` is given twice"
        seen.add(name)
        kept.append((key, value))
    return Cell(language=language, code=block.code, options=tuple(kept), problem=problem)


def is_session_transcript(code: str) -> bool:
    """Whether a block's first non-blank line is a `>>> ` prompt (an interactive session)."""
    for line in code.splitlines():
        if line.strip():
            return line.lstrip().startswith(">>>")
    return False
