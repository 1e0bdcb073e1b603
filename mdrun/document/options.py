"""Block options: validate a cell's options (as its format reader wrote them) into `BlockOptions`.

Defaults come from the document's front matter, as `mdrun.<option>: value` lines (the prefix
keeps mdrun's keys apart from a static site generator's `title:` or `session:`); a block's own
options override them. What the options mean at run time is the planner's and executor's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from mdrun.document.formats.cell import Cell, OptionPairs
from mdrun.document.formats.mapping import option_text
from mdrun.document.output_limit import DEFAULT_MAX_OUTPUT, parse_size
from mdrun.document.parse import Document
from mdrun.errors import Location, ParseError

FRONT_MATTER_PREFIX = "mdrun."
"""Front matter keys with this prefix set document-wide defaults (`mdrun.timeout: 10`)."""

SETTINGS = frozenset({"languages", "doctest"})
"""`mdrun.` front matter keys that are settings of the document, not block options."""

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True, slots=True)
class BlockOptions:
    """A block's validated options."""

    id: str | None = None
    """The explicit `id=`; None means the position-based id `b{index + 1}`."""
    session: str = "main"
    """The kernel session the block runs in; sessions are independent of each other."""
    eval: bool = True
    """Run the block at all."""
    echo: bool = True
    """Show the block's code in exported documents."""
    output: bool = True
    """Show the block's outputs in its region."""
    timeout: float | None = None
    """Seconds before the block is interrupted; None for no limit."""
    allow_error: bool = False
    """An exception in this block is shown but does not fail the run."""
    cache: bool = True
    """Reuse a stored result; False runs the block every time."""
    inputs: tuple[str, ...] = ()
    """Files (relative to the document) whose contents are part of the block's identity."""
    kernel: str | None = None
    """A Jupyter kernel name, overriding the one chosen from the language."""
    snapshot: bool | None = None
    """Snapshot the session's state after this block: True, False, or None for automatic."""
    warning: bool = True
    """Show what the block writes to stderr (warnings); Quarto's and knitr's `warning`."""
    max_output: int = DEFAULT_MAX_OUTPUT
    """Characters of output the block keeps; the rest is dropped with a note (`output_limit`)."""


def _name(value: str) -> str:
    """An id or session name: letters, digits, `_`, `.`, `-`, so it fits in markers and paths."""
    if not _NAME_RE.fullmatch(value):
        raise ValueError("letters, digits, `_`, `.` and `-`, starting with a letter or digit")
    return value


def _boolean(value: str) -> bool:
    """true/false, yes/no, 1/0, on/off, in any case."""
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("true or false (also yes/no, 1/0)")


def _timeout(value: str) -> float | None:
    """A positive number of seconds, or `none`."""
    if value.lower() == "none":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError("a positive number of seconds, or none")
    return seconds


def _inputs(value: str) -> tuple[str, ...]:
    """Comma-separated file paths."""
    paths = tuple(part.strip() for part in value.split(","))
    if not all(paths):
        raise ValueError("comma-separated file paths, none empty")
    return paths


def _kernel(value: str) -> str:
    """A kernelspec name."""
    if not value or any(char.isspace() for char in value):
        raise ValueError("a Jupyter kernel name (see `jupyter kernelspec list`)")
    return value


def _snapshot(value: str) -> bool | None:
    """true, false or auto."""
    if value.lower() == "auto":
        return None
    try:
        return _boolean(value)
    except ValueError:
        raise ValueError("true, false or auto") from None


OPTION_NAMES = tuple(field.name for field in fields(BlockOptions))
"""The options a block accepts (`allow-error` may also be spelled with a hyphen)."""


def _with_option(options: BlockOptions, name: str, value: str) -> BlockOptions:
    """`options` with one more option set from its text; ValueError says what is allowed."""
    match name:
        case "id":
            return replace(options, id=_name(value))
        case "session":
            return replace(options, session=_name(value))
        case "eval":
            return replace(options, eval=_boolean(value))
        case "echo":
            return replace(options, echo=_boolean(value))
        case "output":
            return replace(options, output=_boolean(value))
        case "timeout":
            return replace(options, timeout=_timeout(value))
        case "allow_error":
            return replace(options, allow_error=_boolean(value))
        case "cache":
            return replace(options, cache=_boolean(value))
        case "inputs":
            return replace(options, inputs=_inputs(value))
        case "kernel":
            return replace(options, kernel=_kernel(value))
        case "snapshot":
            return replace(options, snapshot=_snapshot(value))
        case "warning":
            return replace(options, warning=_boolean(value))
        case "max_output":
            return replace(options, max_output=parse_size(value))
    raise AssertionError(f"option {name} has no converter")


_NOT_DEFAULTS = frozenset({"id"})
"""Options that make no sense document-wide."""


def document_defaults(
    document: Document, format_defaults: OptionPairs = (), format_line: int | None = None
) -> BlockOptions:
    """The options a document sets for all its blocks: its format's (Quarto's `execute:`,
    reported at `format_line`), then the front matter's `mdrun.<option>` keys."""
    options = BlockOptions()
    for name, value in format_defaults:
        if name in _NOT_DEFAULTS:
            continue
        options = _set(options, name, value, Location(document.path, format_line))
    for key, value in document.front_matter.data.items():
        if not key.startswith(FRONT_MATTER_PREFIX):
            continue
        name = key.removeprefix(FRONT_MATTER_PREFIX).replace("-", "_")
        if name in SETTINGS:
            continue
        location = Location(document.path, document.front_matter.line_of(key))
        if name in _NOT_DEFAULTS or name not in OPTION_NAMES:
            allowed = ", ".join(
                FRONT_MATTER_PREFIX + option
                for option in (*OPTION_NAMES, *sorted(SETTINGS))
                if option not in _NOT_DEFAULTS
            )
            raise ParseError(f"unknown front matter key `{key}`; mdrun reads {allowed}", location)
        options = _set(options, name, option_text(value), location)
    return options


def cell_options(cell: Cell, location: Location, defaults: BlockOptions) -> BlockOptions:
    """Validate a cell's options over the document's defaults.

    Raises `ParseError` at `location` (the block) for a malformed info string, an unknown
    option, or a bad value, naming what is allowed.
    """
    if cell.problem is not None:
        raise ParseError(cell.problem, location)
    options = defaults
    for key, value in cell.options:
        name = key.replace("-", "_")
        if name not in OPTION_NAMES:
            allowed = ", ".join(OPTION_NAMES)
            raise ParseError(f"unknown option `{key}`; options are {allowed}", location)
        options = _set(options, name, value, location)
    return options


def _set(options: BlockOptions, name: str, value: str, location: Location) -> BlockOptions:
    """Set one option from its text, or say at `location` what the option accepts."""
    try:
        return _with_option(options, name, value)
    except ValueError as err:
        message = f"bad value `{value}` for option `{name}`: expected {err}"
        raise ParseError(message, location) from None
