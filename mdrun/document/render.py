"""Turn a block's outputs into an output region, and splice regions into a document's text.

A region, written right after the block's closing fence, each line carrying the block's
container prefix (`"> "`, `"   "`):

    <!-- mdrun:output id=b1 -->
    ``` text
    ...stdout...
    ```
    <!-- mdrun:end -->

The HTML comments are invisible on GitHub; everything between them is ordinary Markdown. Every
byte outside the regions being replaced is copied through unchanged. Which outputs to show (echo,
output options) is the caller's decision; writing image files is the caller's too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from mdrun.document.html_block import without_blank_lines
from mdrun.document.outputs import (
    DataOutput,
    ErrorOutput,
    Output,
    error_summary,
    merge_streams,
    shorten_library_paths,
    terminal_text,
)
from mdrun.document.parse import Document, line_ending
from mdrun.document.regions import END_MARKER, MARKER_LEAD, START_MARKER
from mdrun.document.status import BlockStatus
from mdrun.errors import InternalError, UsageError

ImageWriter: TypeAlias = Callable[[str, bytes], str]
"""Saves an image (MIME type, bytes) beside the document; returns its relative POSIX path.
Naming the file after a hash of its bytes keeps re-renders byte-identical."""

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
"""Image MIME types, preferred in this order over any text form of the same output."""

_BLOCK_ID_RE = re.compile(r"[^\s>]+")
_BACKTICKS_RE = re.compile(r"`+")
_MARKUP_RE = re.compile(r"[\\`*_~\[\]<>&]")
_SCRIPT_RE = re.compile(r"<script\b", re.IGNORECASE)
_OUTER_BLANK_LINES_RE = re.compile(r"\A(?:[ \t]*\n)+|(?:\n[ \t]*)+\Z")


@dataclass(frozen=True, slots=True)
class RegionBody:
    """What a region shows."""

    outputs: tuple[Output, ...] = ()
    """The block's outputs, in the order the kernel sent them (already filtered by options)."""
    status: BlockStatus = "executed"
    """How the block's run went: `failed` (outputs include the error, if the kernel sent one)
    and `not-run` (only the note: never outputs that may be stale) are shown as such; any other
    status shows the outputs."""
    note: str = ""
    """One line said about the status: why a block did not run, or how it failed (timeout)."""


def render_region(
    block_id: str,
    body: RegionBody,
    *,
    write_image: ImageWriter | None = None,
    scripts: bool = False,
) -> list[str]:
    """The region's lines, without container prefix or line endings.

    An `ok` body without outputs gives no lines: the block gets no region (and `splice` removes
    an old one). Images are linked only when `write_image` is given; otherwise their text form,
    if any, is shown. HTML that needs JavaScript (an interactive figure) is shown only where
    `scripts` says it runs (an HTML export): Markdown viewers remove scripts, so the Markdown
    names the output's MIME types instead.
    """
    if not _BLOCK_ID_RE.fullmatch(block_id):
        # Ids are validated when options are read: one that is not is a bug.
        raise InternalError(f"block id {block_id!r} cannot be written in a region marker")
    lines: list[str] = []
    if body.status == "not-run":
        lines += _paragraph(f"**not run**: {body.note or 'an earlier block did not complete'}")
    else:
        for output in merge_streams(body.outputs):
            lines += _output_lines(block_id, output, write_image, scripts)
        if body.status == "failed" and (body.note or not lines):
            # When the traceback above ends with the note (`ename: evalue`), it is not repeated.
            said = body.note and not _error_says(body.outputs, body.note)
            note = _literal(body.note) if said else ""  # it may quote the error's value: text
            lines += _paragraph(f"**failed**: {note}" if note else "**failed**")
    if not lines:
        return []
    return [START_MARKER.format(block_id=block_id), *lines, END_MARKER]


def _output_lines(
    block_id: str, output: Output, write_image: ImageWriter | None, scripts: bool
) -> list[str]:
    """The Markdown for one output."""
    if output["output_type"] == "stream":
        if output["name"] == "stdout":
            return _fence("text", terminal_text(output["text"]))
        # Warnings name the library file they come from.
        return _fence("stderr", shorten_library_paths(terminal_text(output["text"])))
    if output["output_type"] == "error":
        return _error_lines(output)
    return _data_lines(block_id, output, write_image, scripts)


def _error_says(outputs: Sequence[Output], note: str) -> bool:
    """Whether an error output's last line is `note` already."""
    return any(
        output["output_type"] == "error" and _error_summary(output) == note.strip()
        for output in outputs
    )


def _error_summary(error: ErrorOutput) -> str:
    return terminal_text(error_summary(error["ename"], error["evalue"])).strip()


def _error_lines(error: ErrorOutput) -> list[str]:
    """The traceback, ending with `ename: evalue` as Python prints it; library files named by
    their path inside the package."""
    summary = terminal_text(error_summary(error["ename"], error["evalue"])).strip("\n")
    text = terminal_text("\n".join(error["traceback"])).rstrip("\n")
    text = shorten_library_paths(text)
    if not text.rstrip().endswith(summary.strip()):
        text = f"{text}\n{summary}" if text else summary
    return _fence("error", text)


def _data_lines(
    block_id: str, output: DataOutput, write_image: ImageWriter | None, scripts: bool
) -> list[str]:
    """The richest form of a result that the target shows: image, Markdown, HTML (with scripts
    only if they run there), then plain text; else a note naming its MIME types. HTML is kept
    one HTML block (see `html_block`)."""
    data = output["data"]
    if write_image is not None:
        for mime in IMAGE_TYPES:
            if mime in data:
                path = write_image(mime, _image_bytes(mime, data[mime]))
                return _paragraph(f"![output of {block_id}]({_link_target(path)})")
    if "text/markdown" in data:
        return _raw(data["text/markdown"])
    # The MIME types are the kernel's words: shown as text, never markup.
    kinds = ", ".join(_literal(mime) for mime in sorted(data)) or "no data"
    if "text/html" in data:
        if scripts or not _SCRIPT_RE.search(data["text/html"]):
            return _raw(without_blank_lines(_unix_newlines(data["text/html"])))
        # Its text form is a poor stand-in (`Figure({...})`): say where it can be seen.
        return _paragraph(f"*output not shown: {kinds}; it needs JavaScript (see the HTML export)*")
    if "text/plain" in data:
        return _fence("text", terminal_text(data["text/plain"]))
    # Never nothing: say what the output was (it is kept in the store as the kernel sent it).
    return _paragraph(f"*output not shown: mdrun cannot render {kinds}*")


def _image_bytes(mime: str, content: str) -> bytes:
    """SVG comes as text; other images as base64 (possibly wrapped over lines)."""
    if mime == "image/svg+xml":
        return content.encode("utf-8")
    return base64.b64decode(content)


def _link_target(path: str) -> str:
    """A link destination; `<...>` lets it hold spaces and parentheses."""
    if any(char in path for char in "<>\r\n"):
        # The folder is named after the output document: the user chose its name.
        raise UsageError(
            "the images' folder is named after the output document, and this name cannot be"
            f" written in a Markdown link (no <, > or line breaks): {path!r}"
        )
    return f"<{path}>" if any(char in path for char in " ()") else path


def _fence(info: str, text: str) -> list[str]:
    """A fenced block showing `text` verbatim (nothing when there is no text).

    The fence is longer than any backtick run in the text, so no line can close it. If a line
    looks like a region marker, the whole fence is indented by one space: CommonMark removes that
    space from each content line, so the output shows unchanged, but no line starts with the
    marker any more and the region's end is found where mdrun wrote it.
    """
    if not text:
        return []
    content = text.removesuffix("\n").split("\n")
    longest = max((len(run) for run in _BACKTICKS_RE.findall(text)), default=0)
    ticks = "`" * max(3, longest + 1)
    indent = " " if any(line.startswith(MARKER_LEAD) for line in content) else ""
    return [f"{indent}{ticks} {info}", *(indent + line for line in content), indent + ticks]


def _raw(text: str) -> list[str]:
    """Markdown or HTML inserted as is, followed by a blank line that ends any HTML block.

    A line that looks like a region marker gets one leading space (harmless in HTML and in
    Markdown) so that it cannot end the region early.
    """
    content = _OUTER_BLANK_LINES_RE.sub("", _unix_newlines(text))
    if not content:
        return []
    lines = [" " + line if line.startswith(MARKER_LEAD) else line for line in content.split("\n")]
    return [*lines, ""]


def _literal(text: str) -> str:
    """Text that Markdown shows as it is: the characters that could start markup (emphasis,
    code, links, images, HTML, entities) are escaped with a backslash."""
    return _MARKUP_RE.sub(r"\\\g<0>", text)


def _unix_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _paragraph(text: str) -> list[str]:
    """One line of Markdown text, then a blank line so nothing after it joins the paragraph."""
    return [" ".join(text.split()), ""]


Rewrites: TypeAlias = Mapping[int, tuple[int, Sequence[str]]]
"""Lines replaced inside blocks (a doctest session's outputs): {first line: (end, new lines)},
document line numbers, new lines complete with prefix and ending."""


def splice(
    document: Document,
    regions: Mapping[int, Sequence[str] | None],
    rewrites: Rewrites | None = None,
) -> str:
    """The document's text with the regions of the given blocks (by index) replaced.

    A block whose value is None or empty loses its region; a block not in `regions` keeps its
    region as it is. Each written line gets the block's prefix and the document's newline. Every
    other byte is copied, including a missing final newline: a region that ends the document
    ends without a newline too, so splicing the same regions again changes nothing. A
    byte-order mark is kept.

    No region is written after an unclosed fence: the fence runs to the end of its container,
    so a region written after it would read as more code next time. Such blocks are skipped.
    `rewrites` replace lines inside blocks; the lines they replace are never in a region.
    """
    blocks = {block.index: block for block in document.blocks}
    unknown = sorted(set(regions) - set(blocks))
    if unknown:
        raise InternalError(f"no block with index {unknown[0]} in {document.path}")
    lines = document.lines
    newline = document.newline
    pieces: list[str] = [document.byte_order_mark]
    copied_to = 0
    rewrites = rewrites or {}

    def copy(start: int, end: int) -> None:
        number = start
        for first in sorted(line for line in rewrites if start <= line < end):
            pieces.extend(lines[number:first])
            stop, new_lines = rewrites[first]
            pieces.extend(new_lines)
            number = stop
        pieces.extend(lines[number:end])

    for block in document.blocks:
        if block.index not in regions or not block.closed:
            continue
        new_lines = regions[block.index] or ()
        old_end = block.region.end_line if block.region is not None else block.end_line
        fence_last = lines[block.end_line - 1]
        ends_document = old_end == len(lines) and line_ending(lines[old_end - 1]) == ""
        copy(copied_to, block.end_line - 1)
        if new_lines:
            pieces.append(fence_last if line_ending(fence_last) else fence_last + newline)
            written = [_prefixed(block.prefix, line) + newline for line in new_lines]
            if ends_document:
                written[-1] = written[-1].removesuffix(newline)
            pieces.extend(written)
        elif block.region is not None and ends_document:
            # The newline before the region was added with it: take it away again.
            pieces.append(fence_last.removesuffix(line_ending(fence_last)))
        else:
            pieces.append(fence_last)
        copied_to = old_end
    copy(copied_to, len(lines))
    return "".join(pieces)


def _prefixed(prefix: str, line: str) -> str:
    """A region line inside the block's container; an empty line gets no trailing blanks."""
    return prefix + line if line else prefix.rstrip()
