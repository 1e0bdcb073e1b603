"""Quarto (`.qmd`) and R Markdown (`.Rmd`): only braced fences (```` ```{python} ````) run.

A cell's options come from its header in knitr's form (`{python label, echo=FALSE}`, values
as R writes them) and from `#| key: value` lines at the top of its code (YAML), which win.
Those lines are not part of the code that runs. Plain fences are display code, as in Quarto.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Any

from mdrun.document.formats.cell import Cell
from mdrun.document.formats.mapping import map_options
from mdrun.document.parse import Block

_HEADER = re.compile(r"\{(?P<language>[A-Za-z][\w+-]*)(?P<rest>[\s,].*|)\}", re.DOTALL)
_OPTION_LINE = re.compile(r"[ \t]*(?:#|//|--)\|[ \t]?(?P<yaml>.*)")
_R_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?")
_R_CONSTANTS: Mapping[str, Any] = {
    "TRUE": True, "T": True, "FALSE": False, "F": False, "NULL": None, "NA": None,
}  # fmt: skip


def read_quarto(block: Block, languages: Set[str], kernels: Mapping[str, str]) -> Cell | None:
    """The block as a cell, or None when it is display code or another language's."""
    header = _HEADER.fullmatch(block.info.strip())
    if header is None:
        return None
    language = header.group("language").lower()
    if language in ("python", "python3", "py", "ipython"):
        language = "python"
    values, problem = _knitr_options(header.group("rest"))
    lines = block.code.splitlines(keepends=True)
    option_count = 0
    yaml_lines: list[str] = []
    for line in lines:
        match = _OPTION_LINE.fullmatch(line.rstrip("\r\n"))
        if match is None:
            break
        yaml_lines.append(match.group("yaml"))
        option_count += 1
    if yaml_lines:
        cell_values, yaml_problem = _yaml_options("\n".join(yaml_lines))
        values.update(cell_values)
        problem = problem or yaml_problem
    asks_for_kernel = "kernel" in values
    if not (language == "python" or language in languages or asks_for_kernel):
        return None
    mapped = map_options(values)
    options = mapped.options
    if language in kernels and not asks_for_kernel:
        options = (("kernel", kernels[language]), *options)
    return Cell(
        language=language,
        code="".join(lines[option_count:]),
        options=options,
        problem=problem or mapped.problem,
        option_lines=tuple(range(option_count)),
        notes=mapped.notes,
    )


def _knitr_options(text: str) -> tuple[dict[str, Any], str | None]:
    """`label, echo=FALSE, fig.cap="a, b"` as a label and values (R constants converted)."""
    values: dict[str, Any] = {}
    for position, part in enumerate(_split_top_level(text)):
        key, equals, value = part.partition("=")
        if not equals:
            if position == 0 and " " not in part.strip():
                values["label"] = _r_value(part.strip())
                continue
            return values, f"`{part.strip()}` in the cell header is not an option: write key=value"
        values[key.strip()] = _r_value(value.strip())
    return values, None


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside quotes and brackets; drop empty parts."""
    parts: list[str] = []
    depth = 0
    quote = ""
    current: list[str] = []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _r_value(text: str) -> Any:
    """An R literal as Python: TRUE → True, "x" → x, 3 → 3; other expressions as text."""
    if text in _R_CONSTANTS:
        return _R_CONSTANTS[text]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if _R_NUMBER.fullmatch(text):
        number = float(text.rstrip("L"))
        return int(number) if number.is_integer() else number
    return text


def _yaml_options(text: str) -> tuple[dict[str, Any], str | None]:
    """The `#|` lines as a YAML mapping."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or "invalid syntax"
        return {}, f"the `#|` cell options are not YAML: {problem}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, "the `#|` cell options are not YAML `key: value` lines"
    return {str(key): value for key, value in data.items()}, None
