"""Block options: validate the `key=value` words of an info string into `BlockOptions`.

Defaults come from the document's front matter, as `mdrun.<option>: value` lines (the prefix
keeps mdrun's keys apart from a static site generator's `title:` or `session:`); a block's own
options override them. What the options mean at run time is the planner's and executor's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from mdrun.document.parse import Block, Document
from mdrun.errors import Location, ParseError

FRONT_MATTER_PREFIX = "mdrun."
"""Front matter keys with this prefix set document-wide defaults (`mdrun.timeout: 10`)."""

PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "ipython"})
"""Languages that name Python."""

NEVER_RUN_LANGUAGES = frozenset(
    {
        "", "text", "txt", "plain", "plaintext", "none", "output", "stdout", "stderr", "error",
        "console", "shell-session", "sh-session", "pycon", "pytb", "log", "diff", "patch",
        "json", "jsonc", "json5", "yaml", "yml", "toml", "ini", "cfg", "xml", "csv", "tsv",
        "markdown", "md", "html", "css", "mermaid", "dot", "math", "latex", "tex", "svg",
        "ascii", "gitignore", "dockerfile", "makefile",
    }
)  # fmt: skip
"""Languages whose blocks show data, transcripts or markup and are never executed."""

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
    raise AssertionError(f"option {name} has no converter")


_NOT_DEFAULTS = frozenset({"id"})
"""Options that make no sense document-wide."""


def is_executable_language(language: str) -> str | None:
    """`python` for the Python spellings, None for languages never run, else the language
    itself (the executor looks for a kernel that runs it)."""
    lowered = language.lower()
    if lowered in PYTHON_LANGUAGES:
        return "python"
    if lowered in NEVER_RUN_LANGUAGES:
        return None
    return lowered


def document_defaults(document: Document) -> BlockOptions:
    """The options set by the front matter's `mdrun.<option>` keys (others are ignored)."""
    options = BlockOptions()
    for key, value in document.front_matter.items():
        if not key.startswith(FRONT_MATTER_PREFIX):
            continue
        name = key.removeprefix(FRONT_MATTER_PREFIX).replace("-", "_")
        location = Location(document.path, _front_matter_line(document, key))
        if name in _NOT_DEFAULTS or name not in OPTION_NAMES:
            allowed = ", ".join(
                FRONT_MATTER_PREFIX + option
                for option in OPTION_NAMES
                if option not in _NOT_DEFAULTS
            )
            raise ParseError(f"unknown front matter key `{key}`; mdrun reads {allowed}", location)
        options = _set(options, name, value, location)
    return options


def block_options(
    block: Block, document: Document, defaults: BlockOptions | None = None
) -> BlockOptions:
    """Validate a block's options over the document's defaults.

    Raises `ParseError` at the block's line for a malformed info string, an unknown or repeated
    option, or a bad value, naming what is allowed.
    """
    if defaults is None:
        defaults = document_defaults(document)
    explicit_id = dict(block.raw_options).get("id")
    # A block without `id=` gets its name (b3) only once planned: the line names it here.
    location = Location(document.path, block.line_number, explicit_id)
    if block.options_problem is not None:
        raise ParseError(block.options_problem, location)
    options = defaults
    seen: set[str] = set()
    for key, value in block.raw_options:
        name = key.replace("-", "_")
        if name not in OPTION_NAMES:
            allowed = ", ".join(OPTION_NAMES)
            raise ParseError(f"unknown option `{key}`; options are {allowed}", location)
        if name in seen:
            raise ParseError(f"option `{key}` is given twice", location)
        seen.add(name)
        options = _set(options, name, value, location)
    return options


def _set(options: BlockOptions, name: str, value: str, location: Location) -> BlockOptions:
    """Set one option from its text, or say at `location` what the option accepts."""
    try:
        return _with_option(options, name, value)
    except ValueError as err:
        message = f"bad value `{value}` for option `{name}`: expected {err}"
        raise ParseError(message, location) from None


def _front_matter_line(document: Document, key: str) -> int | None:
    """The 1-based line where the front matter sets `key`, for messages."""
    for number, line in enumerate(document.lines):
        if line.startswith(key) and line[len(key) :].lstrip().startswith(":"):
            return number + 1
    return None
