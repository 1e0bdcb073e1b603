"""Typed views of Jupyter (nbformat v4) outputs, and the text clean-ups they need before display.

Which outputs a block produced is the executor's business; how they look in the document is
`render`'s. This module only names their shapes and reads them back from stored JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Literal, NotRequired, TypeAlias, TypedDict

from mdrun.core.jsonvalue import JSONValue


class StreamOutput(TypedDict):
    """Text a block wrote to stdout or stderr."""

    output_type: Literal["stream"]
    name: Literal["stdout", "stderr"]
    text: str


class DataOutput(TypedDict):
    """A result or a displayed object, in one or more MIME types (images base64-encoded)."""

    output_type: Literal["execute_result", "display_data"]
    data: dict[str, str]
    metadata: dict[str, JSONValue]
    execution_count: NotRequired[int | None]


class ErrorOutput(TypedDict):
    """An exception raised by the block; traceback lines carry no ANSI colour codes."""

    output_type: Literal["error"]
    ename: str
    evalue: str
    traceback: list[str]


Output: TypeAlias = StreamOutput | DataOutput | ErrorOutput

_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences (colours, cursor moves, titles)."""
    return _ANSI_RE.sub("", text)


def terminal_text(text: str) -> str:
    """What a terminal would show: no escape codes, `\\n` endings, and each carriage return
    overwriting its line from the start (progress bars leave their last state only)."""
    text = strip_ansi(text).replace("\r\n", "\n")
    return "\n".join(_overwrite_from_start(line) for line in text.split("\n"))


def _overwrite_from_start(line: str) -> str:
    """Apply the line's carriage returns the way a terminal does."""
    shown = ""
    for part in line.split("\r"):
        shown = part + shown[len(part) :]
    return shown


def error_summary(ename: str, evalue: str) -> str:
    """The last line of an error, as Python prints it (`ValueError: bad`); a shell kernel's
    error has no name and its value is the exit status (`exit status 1`)."""
    if ename and evalue:
        return f"{ename}: {evalue}"
    if ename:
        return ename
    if evalue.strip().isdigit():
        return f"exit status {evalue.strip()}"
    return evalue


_LIBRARY_PATH_RE = re.compile(r"(?<![\w.~/-])(?:~|/)[^\s'\"():,]*?/(site-packages|dist-packages)/")


def shorten_library_paths(text: str) -> str:
    """`/home/me/.venv/lib/python3.11/site-packages/loguru/_logger.py` becomes
    `.../site-packages/loguru/_logger.py`: the path inside the package is what a reader needs,
    and the rest differs from machine to machine (so `check` elsewhere would fail)."""
    return _LIBRARY_PATH_RE.sub(r".../\1/", text)


def merge_streams(outputs: Iterable[Output]) -> list[Output]:
    """Join consecutive stream outputs of the same name (kernels send stdout in pieces)."""
    merged: list[Output] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output["output_type"] == "stream"
            and previous is not None
            and previous["output_type"] == "stream"
            and previous["name"] == output["name"]
        ):
            merged[-1] = StreamOutput(
                output_type="stream", name=output["name"], text=previous["text"] + output["text"]
            )
        else:
            merged.append(output)
    return merged


def outputs_from_json(value: JSONValue) -> list[Output]:
    """Read a stored list of nbformat outputs, checking the fields `render` relies on.

    nbformat allows multi-line strings as lists of lines; they are joined. Raises `ValueError`
    naming the first malformed output: stored outputs are mdrun's own, so that is a bug or a
    damaged store, for the caller to report as such.
    """
    if not isinstance(value, list):
        raise ValueError("outputs must be a JSON list")
    return [_output_from_json(item, position) for position, item in enumerate(value)]


def _output_from_json(item: JSONValue, position: int) -> Output:
    """Check and convert one output."""
    if not isinstance(item, dict):
        raise ValueError(f"output {position} is not a JSON object")
    kind = item.get("output_type")
    if kind == "stream":
        name = item.get("name")
        if name not in ("stdout", "stderr"):
            raise ValueError(f"output {position}: stream name must be stdout or stderr")
        return StreamOutput(
            output_type="stream",
            name="stdout" if name == "stdout" else "stderr",
            text=_text(item.get("text"), position, "text"),
        )
    if kind in ("execute_result", "display_data"):
        data = item.get("data")
        metadata = item.get("metadata", {})
        if not isinstance(data, dict) or not isinstance(metadata, dict):
            raise ValueError(f"output {position}: data and metadata must be JSON objects")
        return DataOutput(
            output_type="execute_result" if kind == "execute_result" else "display_data",
            data={mime: _text(content, position, mime) for mime, content in data.items()},
            metadata=metadata,
        )
    if kind == "error":
        traceback = item.get("traceback", [])
        if not isinstance(traceback, list):
            raise ValueError(f"output {position}: traceback must be a list of strings")
        return ErrorOutput(
            output_type="error",
            ename=_text(item.get("ename"), position, "ename"),
            evalue=_text(item.get("evalue"), position, "evalue"),
            traceback=[_text(line, position, "traceback") for line in traceback],
        )
    raise ValueError(f"output {position}: unknown output_type {kind!r}")


def _text(value: JSONValue, position: int, field: str) -> str:
    """A string field, joining nbformat's list-of-lines form."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(part for part in value if isinstance(part, str))
    if isinstance(value, dict | list):
        # JSON MIME types (application/json) are kept as their JSON text.
        return json.dumps(value)
    raise ValueError(f"output {position}: {field} must be a string")
