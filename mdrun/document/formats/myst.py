"""MyST notebooks (Jupyter Book, Jupytext's MyST format): only `{code-cell}` fences run.

A code cell's options are a `---` YAML header or `:key: value` lines at the top of its content,
never code; MyST-NB's tags (`remove-input`, `raises-exception`, `skip-execution`...) map onto
mdrun's options. The notebook's `kernelspec` chooses the kernel. Every other directive fence
(`{note}`, `{math}`, `{include}`) is text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from typing import Any

from mdrun.document.formats.cell import Cell
from mdrun.document.formats.mapping import map_options, map_tags
from mdrun.document.parse import Block

CODE_CELL = "{code-cell}"
"""The directive of an executable cell."""

_OPTION_LINE = re.compile(r":(?P<key>[A-Za-z][\w-]*):(?:[ \t]+(?P<value>.*))?")
_PYTHON_NAMES = frozenset({"python", "python3", "py", "ipython", "ipython3"})


def is_code_cell(block: Block) -> bool:
    """Whether a fence is a MyST `{code-cell}` directive."""
    return block.info.strip().split(maxsplit=1)[:1] == [CODE_CELL]


def read_myst(
    block: Block, notebook_language: str, languages: Set[str], kernels: Mapping[str, str]
) -> Cell | None:
    """The block as a cell, or None when it is text (any fence but a code cell)."""
    if not is_code_cell(block):
        return None
    argument = block.info.strip()[len(CODE_CELL) :].strip().lower()
    language = argument or notebook_language
    if language in _PYTHON_NAMES:
        language = "python"
    lines = block.code.splitlines(keepends=True)
    values, option_count, problem = _cell_options(lines)
    asks_for_kernel = "kernel" in values
    runs = language in ("python", notebook_language) or language in languages
    if not (runs or asks_for_kernel):
        return None
    tags = values.pop("tags", [])
    if not isinstance(tags, list):
        tags = [tags]
    mapped = map_options(values)
    options = (*map_tags(tags), *mapped.options)
    if language in kernels and not asks_for_kernel:
        options = (("kernel", kernels[language]), *options)
    return Cell(
        language=language,
        code="".join(lines[option_count:]),
        options=tuple(options),
        problem=problem or mapped.problem,
        option_lines=tuple(range(option_count)),
        notes=mapped.notes,
    )


def _cell_options(lines: Sequence[str]) -> tuple[dict[str, Any], int, str | None]:
    """The options at the top of a cell, how many lines they take, and a problem or None."""
    if lines and lines[0].rstrip() == "---":
        for end in range(1, len(lines)):
            if lines[end].rstrip() == "---":
                data, problem = _yaml("".join(lines[1:end]))
                return data, end + 1, problem
        return {}, 0, "the cell's `---` option header is never closed"
    values: dict[str, Any] = {}
    count = 0
    for line in lines:
        match = _OPTION_LINE.fullmatch(line.rstrip("\r\n"))
        if match is None:
            break
        data, problem = _yaml(f"value: {match.group('value') or ''}")
        if problem is not None:
            return {}, count, f"option `:{match.group('key')}:` is not YAML"
        values[match.group("key")] = data.get("value")
        count += 1
    return values, count, None


def _yaml(text: str) -> tuple[dict[str, Any], str | None]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return {}, f"the cell's options are not YAML: {getattr(err, 'problem', None) or err}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, "the cell's options are not YAML `key: value` lines"
    return {str(key): value for key, value in data.items()}, None
